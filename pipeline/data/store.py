"""Prepared splits as Arrow files that training workers memory-map instead of loading.

Column ``image`` is a fixed-size list of float32 of length D = prod(shape): its values are one
flat float32 buffer, so a split written as a *single* record batch is an (N, D) numpy view of
the mapped file. ``Dataset.save_to_disk`` writes batches of at most 1,000 rows (there is no
option for more), so after it has written the ``datasets`` layout (state and info files) the
data file is rewritten as one batch with the schema ``datasets`` chose.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.data.meta import DATASET

_DATA_FILE = "data-00000-of-00001.arrow"


def split_table(x: np.ndarray, labels: np.ndarray | None) -> pa.Table:
    """(N, ...) float32 rows (and int64 labels) as a one-chunk table, without copying ``x``."""
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    columns = {"image": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])}
    if labels is not None:
        columns["label"] = pa.array(np.asarray(labels, dtype=np.int64))
    return pa.table(columns)


def write_splits(directory: Path, tables: dict[str, pa.Table]) -> None:
    """A ``DatasetDict`` saved under ``directory/dataset`` with one record batch per split file."""
    import datasets

    datasets.disable_progress_bars()
    dataset = datasets.DatasetDict({name: datasets.Dataset(datasets.table.InMemoryTable(table))
                                    for name, table in tables.items()})
    dataset.save_to_disk(str(directory / DATASET), num_shards=dict.fromkeys(tables, 1))
    for name, table in tables.items():
        _rewrite_as_one_batch(directory / DATASET / name / _DATA_FILE, table)


def _rewrite_as_one_batch(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "rb") as f:
        schema = pa.ipc.open_stream(f).schema  # carries the "huggingface" features metadata
    one = pa.Table.from_arrays(table.combine_chunks().columns, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(one, max_chunksize=max(1, one.num_rows))
    os.replace(tmp, path)


def open_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) of a prepared split: x is an (N, D) float32 read-only view of the memory-mapped
    Arrow file (index it with batch indices to read just those rows), y int64 labels or None."""
    import datasets

    from pipeline.data.meta import load_prepared

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    prepared = load_prepared(path)
    ds = datasets.load_from_disk(str(Path(prepared.path) / DATASET / split))
    column = ds.data.column("image")
    if column.num_chunks == 1:
        images = column.chunk(0)
    else:  # not written by write_splits (an older layout): one copy in memory instead of a view
        warnings.warn(f"{path}: the {split} images are stored in {column.num_chunks} Arrow chunks, so they are "
                      f"copied into memory instead of memory-mapped; prepare the data again to fix this",
                      stacklevel=2)
        images = column.combine_chunks()
    x = images.flatten().to_numpy(zero_copy_only=True).reshape(len(images), images.type.list_size)
    y = np.array(ds.data.column("label").to_numpy(), dtype=np.int64) if "label" in ds.column_names else None
    return x, y
