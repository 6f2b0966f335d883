"""Data preparation: every source on local fixtures, caching, binarisation, and the bad-input errors."""

from __future__ import annotations

import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import DataConfig
from pipeline.data import load_prepared, open_split, prepare
from pipeline.errors import DataError


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    d = tmp_path / "idx"
    d.mkdir()
    for prefix, n, gz in (("train", 30, True), ("t10k", 10, False)):
        x = rng.integers(0, 256, size=(n, 6, 5), dtype=np.uint8)
        y = rng.integers(0, 3, size=n, dtype=np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = _idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            (d / (name + ".gz")).write_bytes(gzip.compress(data)) if gz else (d / name).write_bytes(data)
    return d


def test_digits_split_is_deterministic_and_scaled(tmp_path):
    a = prepare(DataConfig(source="digits"), tmp_path / "a")
    b = prepare(DataConfig(source="digits"), tmp_path / "b")
    assert a.meta.n_train + a.meta.n_test == 1797 and a.meta.shape == (1, 8, 8)
    xa, ya = open_split(a.path, "train")
    xb, yb = open_split(b.path, "train")
    assert np.array_equal(np.asarray(xa), np.asarray(xb)) and np.array_equal(ya, yb)
    assert xa[np.arange(len(xa))].min() == -1.0 and xa[np.arange(len(xa))].max() == 1.0
    assert a.meta.value_range == (-1.0, 1.0) and a.meta.num_classes == 10


def test_idx_gzipped_and_raw(idx_dir, tmp_path):
    p = prepare(DataConfig(source=f"idx:{idx_dir}", scale="unit"), tmp_path / "out")
    assert (p.meta.n_train, p.meta.n_test, p.meta.shape, p.meta.split) == (30, 10, (1, 6, 5), "source")
    x, y = open_split(p.path, "test")
    raw = np.frombuffer((idx_dir / "t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8).reshape(10, 30)
    assert np.allclose(x[np.arange(10)], raw / 255.0) and y.dtype == np.int64


def test_second_prepare_is_a_cache_hit(idx_dir, tmp_path):
    first = prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    started = time.perf_counter()
    second = prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "out")
    assert not first.cached and second.cached and time.perf_counter() - started < 5


def test_threshold_and_stochastic_binarisation(tmp_path):
    t = prepare(DataConfig(source="digits", binarize="threshold", threshold=0.5), tmp_path / "t")
    x, _ = open_split(t.path, "train")
    vals = np.unique(x[np.arange(len(x))])
    assert set(vals) == {0.0, 1.0} and t.meta.threshold == 0.5 and t.meta.value_range == (0.0, 1.0)
    s1 = prepare(DataConfig(source="digits", binarize="stochastic", seed=3), tmp_path / "s1")
    s2 = prepare(DataConfig(source="digits", binarize="stochastic", seed=3), tmp_path / "s2")
    u = prepare(DataConfig(source="digits", scale="unit"), tmp_path / "u")
    xs1, xs2, xu = (np.asarray(open_split(p.path, "train")[0]) for p in (s1, s2, u))
    assert np.array_equal(xs1, xs2) and s1.meta.binarize_seed == 3
    assert abs(xs1.mean() - xu.mean()) < 0.01  # E[Bernoulli(p)] = p


def test_open_split_does_not_copy_the_file(tmp_path):
    p = prepare(DataConfig(source="digits"), tmp_path / "d")
    x, _ = open_split(p.path, "train")
    assert all(not c.flags.owndata for c in x.chunks)


def test_imagefolder_parquet_disk_and_local_hf(tmp_path):
    import datasets

    folder = tmp_path / "folder"
    rng = np.random.default_rng(1)
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8)).save(folder / label / f"{i}.png")
    f = prepare(DataConfig(source=f"imagefolder:{folder}", test_fraction=0.25), tmp_path / "f")
    assert f.meta.n_train + f.meta.n_test == 12 and f.meta.class_names == ["cat", "dog"]

    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(rng.integers(0, 256, (3, 3), dtype=np.uint8))
                                               for _ in range(8)], "label": [0, 1] * 4})
    ds.to_parquet(str(tmp_path / "d.parquet"))
    pq = prepare(DataConfig(source=f"parquet:{tmp_path / 'd.parquet'}", test_fraction=0.25), tmp_path / "pq")
    assert pq.meta.shape == (1, 3, 3) and pq.meta.n_test == 2

    ds.save_to_disk(str(tmp_path / "saved"))
    dk = prepare(DataConfig(source=f"disk:{tmp_path / 'saved'}", test_fraction=0.25), tmp_path / "dk")
    assert dk.meta.n_train == 6

    repo = tmp_path / "hf-repo" / "data"
    repo.mkdir(parents=True)
    ds.to_parquet(str(repo / "train-00000.parquet"))
    hf = prepare(DataConfig(source=f"hf:{tmp_path / 'hf-repo'}", test_fraction=0.25), tmp_path / "hf")
    assert hf.meta.n_train + hf.meta.n_test == 8


def test_hub_name_offline_fails_fast_with_advice(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.perf_counter()
    with pytest.raises(DataError, match="not reachable.*idx:DIR"):
        prepare(DataConfig(source="hf:nobody/nothing"), tmp_path / "x")
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("source,match", [
    ("idz:/x", "Did you mean 'idx:'"),
    ("idx:/definitely/missing", "does not exist"),
    ("toy:moon", "not a known toy"),
])
def test_bad_sources(tmp_path, source, match):
    with pytest.raises(DataError, match=match):
        prepare(DataConfig(source=source), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_and_truncated_idx(idx_dir, tmp_path):
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable"):
        prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "a")
    data = _idx_bytes(np.zeros((30, 6, 5), dtype=np.uint8))[:-7]
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare(DataConfig(source=f"idx:{idx_dir}"), tmp_path / "b")


def test_mixed_sizes_refused_or_resized(tmp_path):
    folder = tmp_path / "mixed" / "a"
    folder.mkdir(parents=True)
    for i, size in enumerate([(4, 4), (4, 4), (6, 5), (4, 4)]):
        Image.fromarray(np.full(size, 100, dtype=np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(DataError, match="different sizes.*data.image_size"):
        prepare(DataConfig(source=f"imagefolder:{tmp_path / 'mixed'}", test_fraction=0.25), tmp_path / "o")
    ok = prepare(DataConfig(source=f"imagefolder:{tmp_path / 'mixed'}", test_fraction=0.25, image_size=4,
                            resize="bilinear"), tmp_path / "o")
    assert ok.meta.shape == (1, 4, 4) and "bilinear" in ok.meta.resize


def test_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        prepare(DataConfig(source=f"imagefolder:{tmp_path / 'empty'}"), tmp_path / "o")


def test_output_dir_holding_something_else_is_left_alone(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="holds other files"):
        prepare(DataConfig(source="digits"), out)
    assert (out / "thesis.tex").read_text() == "precious"
    prepare(DataConfig(source="digits"), tmp_path / "prepared")
    with pytest.raises(DataError, match="different spec"):
        prepare(DataConfig(source="digits", seed=5), tmp_path / "prepared")


def test_load_prepared_on_a_plain_dir_explains(tmp_path):
    with pytest.raises(DataError, match="boltzgan data prepare"):
        load_prepared(tmp_path)
