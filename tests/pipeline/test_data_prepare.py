"""The prepare stage: caching, scaling and binarisation rules, limit, resizing, the zero-copy
memory-mapped read, and the errors (each one paragraph, nothing written, nothing deleted)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from pipeline.config import DataConfig
from pipeline.data import load_prepared, open_split, prepare
from pipeline.errors import DataError

from .conftest import write_idx_dir


def _x(path: str, split: str = "train") -> np.ndarray:
    return np.array(open_split(path, split)[0])


# ------------------------------------------------------------------------------------------ caching

def test_same_spec_twice_is_a_cache_hit_that_does_no_work(idx_dir, tmp_path):
    first = prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    stamp = os.stat(tmp_path / "out" / "meta.json").st_mtime_ns
    started = time.perf_counter()
    second = prepare(DataConfig(source=f"idx:{idx_dir}", toy_samples=7), tmp_path / "out")  # toy_samples: no effect
    assert not first.cached and second.cached and time.perf_counter() - started < 1.0
    assert second.meta == first.meta and os.stat(tmp_path / "out" / "meta.json").st_mtime_ns == stamp


def test_a_changed_source_or_spec_is_not_served_from_the_cache(idx_dir, tmp_path):
    prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    with pytest.raises(DataError, match=r"another spec.*another --out or delete"):
        prepare(DataConfig(source=f"idx:{idx_dir}", scale="unit"), tmp_path / "out")
    os.utime(idx_dir / "t10k-images-idx3-ubyte", ns=(1, 1))  # the source file changed
    with pytest.raises(DataError, match="another spec"):
        prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    assert load_prepared(tmp_path / "out").meta.value_range == (-1.0, 1.0)  # left as it was


# ------------------------------------------------------------------------------------------ values

def test_symmetric_and_unit_scaling(idx_dir, tmp_path):
    sym = prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "s")
    unit = prepare(DataConfig(source=f"idx:{idx_dir}", scale="unit"), tmp_path / "u")
    assert sym.meta.value_range == (-1.0, 1.0) and unit.meta.value_range == (0.0, 1.0)
    assert np.allclose(_x(sym.path), 2 * _x(unit.path) - 1, atol=1e-6)


def test_threshold_binarisation_is_strictly_above_the_threshold(tmp_path):
    # pixel 51 is exactly 0.2 (51/255): it stays 0; 52 becomes 1
    pixels = np.tile(np.array([0, 50, 51, 52, 200, 255], dtype=np.uint8), (4, 1, 1))
    src = write_idx_dir(tmp_path / "idx", pixels, pixels)
    p = prepare(DataConfig(source=f"idx:{src}", binarize="threshold", threshold=0.2), tmp_path / "t")
    assert np.array_equal(_x(p.path), (pixels.reshape(4, -1) > 51).astype(np.float32))
    assert (p.meta.binarize, p.meta.threshold, p.meta.binarize_seed, p.meta.value_range) == ("threshold", 0.2, None,
                                                                                             (0.0, 1.0))
    assert p.data_shape().binary


def test_stochastic_binarisation_is_seeded_and_unbiased(tmp_path):
    # columns of intensity 0, 64/255, 191/255 and 1 over 200 images of 8×8
    pixels = np.tile(np.repeat(np.array([0, 64, 191, 255], dtype=np.uint8), 2), (200, 8, 1))
    src = write_idx_dir(tmp_path / "idx", pixels, pixels[:20])
    a, b, c = (prepare(DataConfig(source=f"idx:{src}", binarize="stochastic", seed=s), tmp_path / n)
               for s, n in ((3, "a"), (3, "b"), (4, "c")))
    xa = _x(a.path).reshape(-1, 8, 8)
    assert np.array_equal(xa, _x(b.path).reshape(-1, 8, 8)) and not np.array_equal(xa, _x(c.path).reshape(-1, 8, 8))
    assert set(np.unique(xa)) == {0.0, 1.0} and a.meta.binarize_seed == 3
    assert xa[..., 0:2].max() == 0.0 and xa[..., 6:8].min() == 1.0
    for cols, p in ((slice(2, 4), 64 / 255), (slice(4, 6), 191 / 255)):
        n = xa[..., cols].size  # 25,600 draws: 5 standard errors is < 0.02
        assert abs(xa[..., cols].mean() - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_limit_keeps_the_first_training_examples(idx_dir, tmp_path):
    full = prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "full")
    few = prepare(DataConfig(source=f"idx:{idx_dir}", limit=7), tmp_path / "few")
    assert (few.meta.n_train, few.meta.n_test) == (7, 10) and "limit" in few.meta.split
    assert np.array_equal(_x(few.path), _x(full.path)[:7])
    assert np.array_equal(_x(few.path, "test"), _x(full.path, "test"))


# ------------------------------------------------------------------------------------------ reading

def test_open_split_is_a_view_of_the_memory_mapped_file(tmp_path):
    p = prepare(DataConfig(source="digits"), tmp_path / "d")  # 1,438 training rows: more than one save_to_disk batch
    x, y = open_split(p.path, "train")
    assert isinstance(x, np.ndarray) and x.shape == (1438, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert not x.flags.owndata and not x.flags.writeable
    # oracle: bytes written into the file on disk show through the array (a copy would not change)
    arrow = tmp_path / "d" / "dataset" / "train" / "data-00000-of-00001.arrow"
    last = x[-1].tobytes()
    offset = arrow.read_bytes().find(last)
    with arrow.open("r+b") as f:
        f.seek(offset)
        f.write(np.full(64, 7.0, dtype=np.float32).tobytes())
    assert np.all(x[-1] == 7.0)
    assert np.array_equal(x[[3, 0, 1437]], np.stack([x[3], x[0], x[1437]]))  # random batch indexing works


def test_data_shape_for_recipes(tmp_path):
    p = prepare(DataConfig(source="digits", scale="unit"), tmp_path / "d")
    s = p.data_shape()
    assert (s.shape, s.value_range, s.binary, s.num_classes, s.dim) == ((1, 8, 8), (0.0, 1.0), False, 10, 64)


# ------------------------------------------------------------------------------------------ sizes

def _mixed_folder(root, sizes):
    (root / "a").mkdir(parents=True)
    for i, size in enumerate(sizes):
        Image.fromarray(np.full(size, 100, dtype=np.uint8)).save(root / "a" / f"{i}.png")
    return root


def test_mixed_sizes_are_refused_with_both_sizes_and_the_fix(tmp_path):
    src = _mixed_folder(tmp_path / "mixed", [(4, 4), (4, 4), (6, 5), (4, 4)])
    with pytest.raises(DataError, match=r"different sizes \(4×4 and 6×5.*data.image_size=N data.resize=bilinear"):
        prepare(DataConfig(source=f"imagefolder:{src}", test_fraction=0.25), tmp_path / "o")
    assert not (tmp_path / "o").exists()
    ok = prepare(DataConfig(source=f"imagefolder:{src}", test_fraction=0.25, image_size=4, resize="bilinear",
                            scale="unit"), tmp_path / "o")
    assert ok.meta.shape == (1, 4, 4) and ok.meta.resize == "bilinear to 4x4"
    # a constant image stays constant under resizing
    assert np.allclose(np.concatenate([_x(ok.path), _x(ok.path, "test")]), 100 / 255, atol=1e-5)


def test_image_size_without_a_resize_rule_is_refused(idx_dir, tmp_path):
    with pytest.raises(DataError, match=r"6×5 images but data.image_size=8"):
        prepare(DataConfig(source=f"idx:{idx_dir}", image_size=8), tmp_path / "o")
    p = prepare(DataConfig(source=f"idx:{idx_dir}", image_size=8, resize="nearest"), tmp_path / "o")
    assert p.meta.shape == (1, 8, 8) and p.meta.n_test == 10


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("source,match", [
    ("idz:/x", r"not a known source\. Did you mean 'idx:'\? Valid forms: digits, idx:DIR"),
    ("digit", "Did you mean 'digits'"),
    ("idx:", "'idx:' needs a path"),
    ("idx:/definitely/missing", "/definitely/missing does not exist"),
    ("parquet:/definitely/missing.parquet", "does not exist"),
    ("toy:moon", "toy:moon is not a known toy"),
])
def test_bad_sources(tmp_path, source, match):
    with pytest.raises(DataError, match=match):
        prepare(DataConfig(source=source), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_path(idx_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.data.sources.os.access", lambda *_: False)  # tests may run as root
    with pytest.raises(DataError, match="not readable by this user"):
        prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")


@pytest.mark.parametrize("make_source,match", [
    (lambda tmp: tmp.joinpath("empty").mkdir() or f"imagefolder:{tmp / 'empty'}", "is empty"),
    (lambda tmp: f"idx:{write_idx_dir(tmp / 'i', np.zeros((0, 2, 2), np.uint8), np.zeros((3, 2, 2), np.uint8))}",
     "no training examples"),
])
def test_empty_sources(tmp_path, make_source, match):
    with pytest.raises(DataError, match=match):
        prepare(DataConfig(source=make_source(tmp_path)), tmp_path / "out")


def test_empty_or_bad_parquet_and_missing_image_column(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"image": [], "label": []}).to_parquet(str(tmp_path / "e.parquet"))
    with pytest.raises(DataError, match="holds no examples"):
        prepare(DataConfig(source=f"parquet:{tmp_path / 'e.parquet'}"), tmp_path / "o")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable parquet file"):
        prepare(DataConfig(source=f"parquet:{tmp_path / 'bad.parquet'}"), tmp_path / "o")
    datasets.Dataset.from_dict({"text": ["a", "b"], "stars": [1, 2]}).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DataError, match="no image column among the columns text, stars"):
        prepare(DataConfig(source=f"parquet:{tmp_path / 't.parquet'}"), tmp_path / "o")


def test_output_dir_holding_something_else_is_never_touched(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match=rf"{busy} already holds other files.*another --out"):
        prepare(DataConfig(source="digits"), busy)
    assert [p.name for p in busy.iterdir()] == ["thesis.tex"] and (busy / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        prepare(DataConfig(source="digits"), tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare(DataConfig(source="digits"), empty).meta.n_train == 1438  # an empty dir is free to use


def test_damaged_prepared_dir_is_reported(tmp_path):
    prepare(DataConfig(source="digits"), tmp_path / "d")
    (tmp_path / "d" / "meta.json").write_text("{ not json")
    with pytest.raises(DataError, match="meta.json is unreadable.*delete"):
        prepare(DataConfig(source="digits"), tmp_path / "d")
    with pytest.raises(DataError, match="boltzgan data prepare"):
        load_prepared(tmp_path / "nothing-here")


def test_a_failure_while_writing_leaves_nothing_behind(idx_dir, tmp_path, monkeypatch):
    def half_write(directory, tables):
        (directory / "dataset").mkdir()
        (directory / "dataset" / "partial.arrow").write_bytes(b"...")
        raise OSError("disk full")

    monkeypatch.setattr("pipeline.data.stage.write_splits", half_write)
    with pytest.raises(OSError, match="disk full"):
        prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".out.lock", "idx"]  # no out, no temporary sibling (the lock file stays, empty of data)
