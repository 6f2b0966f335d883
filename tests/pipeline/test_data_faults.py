"""Bad data is refused with the file, count and index named (or skipped when asked), never
prepared silently and never a traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.config import DataConfig
from pipeline.data import open_split, prepare
from pipeline.errors import DataError


def _pixels_parquet(path, rows: np.ndarray) -> str:
    import datasets

    datasets.Dataset.from_dict({"pixel_values": rows.tolist(), "label": [0, 1] * (len(rows) // 2)}).to_parquet(str(path))
    return f"parquet:{path}"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_with_count_and_first_index(tmp_path, bad):
    rows = np.random.default_rng(0).random((6, 3, 3)).astype(np.float32)
    rows[2, 1, 0] = bad
    rows[4, 0, 0] = bad
    source = _pixels_parquet(tmp_path / "p.parquet", rows)
    with pytest.raises(DataError, match=r"2 non-finite value\(s\).*first at index \(2, 1, 0"):
        prepare(DataConfig(source=source, scale="unit"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _png(size=(4, 4), value=128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "folder"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.png").write_bytes(_png(value=40 * i + 10))
    return root


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_an_unreadable_image_is_named_or_skipped(folder, tmp_path, damage):
    bad = folder / "b" / "1.png"
    bad.write_bytes(b"\x89PNG not really" if damage == "garbage" else _png((32, 32))[:60])
    with pytest.raises(DataError, match=r"the image .*b/1\.png .*cannot be read.*data\.bad_images=skip"):
        prepare(DataConfig(source=f"imagefolder:{folder}", test_fraction=0.2), tmp_path / "out")
    kept = prepare(DataConfig(source=f"imagefolder:{folder}", test_fraction=0.2, bad_images="skip"), tmp_path / "o2")
    assert kept.meta.n_train + kept.meta.n_test == 5


def test_a_decompression_bomb_is_refused(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 16×16 image below counts as a bomb
    (folder / "a" / "0.png").write_bytes(_png((16, 16)))
    with pytest.raises(DataError, match=r"a/0\.png .*DecompressionBomb"):
        prepare(DataConfig(source=f"imagefolder:{folder}", image_size=4, resize="nearest"), tmp_path / "out")


def test_parquet_image_structs_without_hf_metadata_are_decoded(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [10, 60, 110, 160]
    images = pa.array([{"bytes": _png(value=v), "path": f"{i}.png"} for i, v in enumerate(values)],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": images, "label": [0, 1, 0, 1]}), tmp_path / "raw.parquet")
    p = prepare(DataConfig(source=f"parquet:{tmp_path / 'raw.parquet'}", scale="unit", test_fraction=0.25),
                tmp_path / "out")
    x, _ = open_split(p.path, "train")
    seen = sorted({round(float(v) * 255) for v in np.unique(np.array(x))})
    assert p.meta.shape == (1, 4, 4) and set(seen) <= set(values) and len(seen) == 3


def test_a_text_column_named_image_is_a_clear_error(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"image": ["a", "b", "c", "d"]}).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DataError, match="column 'image' holds str values"):
        prepare(DataConfig(source=f"parquet:{tmp_path / 't.parquet'}"), tmp_path / "out")


def test_a_missing_local_hf_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=r"local path .*missing/here, which does not exist"):
        prepare(DataConfig(source=f"hf:{tmp_path / 'missing' / 'here'}"), tmp_path / "out")
