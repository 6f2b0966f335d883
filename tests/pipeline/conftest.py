"""Small on-disk data sources built by the data tests (IDX files, image folders)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def idx_bytes(arr: np.ndarray) -> bytes:
    """An uint8 array in IDX format: magic (0, 0, 0x08, ndim), big-endian sizes, values."""
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx_dir(directory: Path, train: np.ndarray, test: np.ndarray | None, gzip_train: bool = True,
                  n_classes: int = 3) -> Path:
    """MNIST-style files: train-* gzipped (by default), t10k-* raw; labels i % n_classes."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, x, gz in (("train", train, gzip_train), ("t10k", test, False)):
        if x is None:
            continue
        y = (np.arange(len(x)) % n_classes).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name, data = f"{prefix}-{kind}-ubyte", idx_bytes(arr)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)
    return directory


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """30 train (gzipped) + 10 test (raw) random 6×5 uint8 images, 3 classes."""
    rng = np.random.default_rng(0)
    return write_idx_dir(tmp_path / "idx", rng.integers(0, 256, (30, 6, 5), dtype=np.uint8),
                         rng.integers(0, 256, (10, 6, 5), dtype=np.uint8))


@pytest.fixture
def image_folder(tmp_path) -> Callable[..., Path]:
    """Build class sub-folders of PNGs: make({"cat": [(h, w), ...], ...}, mode="L")."""

    def make(classes: dict[str, list[tuple[int, int]]], mode: str = "L", name: str = "folder") -> Path:
        rng = np.random.default_rng(1)
        root = tmp_path / name
        for label, sizes in classes.items():
            (root / label).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                shape = (h, w) if mode == "L" else (h, w, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / label / f"{i}.png")
        return root

    return make


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """The toy family of ``tests/pipeline/toy_family.py`` through every stage, in-process:
    prepare → train → sample → evaluate → report, each stage handed the previous one's result."""
    from types import SimpleNamespace

    from pipeline.config import load_config
    from pipeline.data import prepare
    from pipeline.engine import train
    from pipeline.evaluation import evaluate
    from pipeline.report import build_report
    from pipeline.rundir import data_dir
    from pipeline.sampling import sample
    from tests.pipeline import toy_family

    cfg = load_config(base=toy_family.preset(str(tmp_path_factory.mktemp("toy-runs"))))
    data = prepare(cfg.data, data_dir(cfg))
    trained = train(cfg, data)
    samples = sample(trained.run_dir, cfg.sample)
    evaluation = evaluate(trained.run_dir, cfg.evaluate, samples)
    report = build_report(trained.run_dir, evaluation, samples)
    return SimpleNamespace(cfg=cfg, data=data, trained=trained, samples=samples, evaluation=evaluation,
                           report=report)
