"""Every data source on small local fixtures, compared with the values it was built from; the Hub
only without the network (a local dataset folder in offline mode, and the fail-fast paths)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import DataConfig
from pipeline.data import open_split, prepare
from pipeline.data.hf import hub_reachable
from pipeline.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def _all(path: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    x, y = open_split(path, split)
    return np.array(x), y


def test_digits_scaled_split_and_labels(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    p = prepare(DataConfig(source="digits"), tmp_path / "d")
    xtr, ytr = _all(p.path, "train")
    xte, yte = _all(p.path, "test")
    assert (p.meta.n_train, p.meta.n_test, p.meta.shape) == (1438, 359, (1, 8, 8))
    assert p.meta.split == "random test_fraction=0.2 seed=0" and p.meta.num_classes == 10
    # the two splits together are exactly the 1,797 digits, 0..16 mapped to [-1, 1]
    got = np.concatenate([xtr, xte])
    want = d.images.reshape(len(d.images), -1) / 16.0 * 2 - 1
    order = lambda a: np.lexsort(a.T[::-1])  # noqa: E731
    assert np.allclose(got[order(got)], want[order(want)], atol=1e-6)
    assert np.array_equal(np.bincount(np.concatenate([ytr, yte])), np.bincount(d.target))


def test_digits_split_depends_on_seed_only(tmp_path):
    a, b, c = (prepare(DataConfig(source="digits", seed=s), tmp_path / n) for s, n in ((0, "a"), (0, "b"), (1, "c")))
    assert np.array_equal(_all(a.path, "test")[0], _all(b.path, "test")[0])
    assert not np.array_equal(_all(a.path, "test")[0], _all(c.path, "test")[0])


def test_idx_gzipped_train_and_raw_test(idx_dir, tmp_path):
    import gzip

    p = prepare(DataConfig(source=f"idx:{idx_dir}", scale="unit"), tmp_path / "out")
    assert (p.meta.n_train, p.meta.n_test, p.meta.shape, p.meta.split) == (30, 10, (1, 6, 5), "source")
    for split, name in (("train", "train-images-idx3-ubyte.gz"), ("test", "t10k-images-idx3-ubyte")):
        raw = (idx_dir / name).read_bytes()
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 30)
        x, y = _all(p.path, split)
        assert np.allclose(x, pixels / 255.0) and np.array_equal(y, np.arange(len(x)) % 3) and y.dtype == np.int64


def test_imagefolder_classes_become_labels(image_folder, tmp_path):
    root = image_folder({"cat": [(4, 4)] * 6, "dog": [(4, 4)] * 6})
    p = prepare(DataConfig(source=f"imagefolder:{root}", test_fraction=0.25, scale="unit"), tmp_path / "f")
    assert (p.meta.n_train, p.meta.n_test, p.meta.class_names, p.meta.shape) == (9, 3, ["cat", "dog"], (1, 4, 4))
    x, y = _all(p.path, "train")
    pngs = {np.asarray(Image.open(f)).tobytes(): f.parent.name for f in root.rglob("*.png")}
    for row, label in zip(x, y, strict=True):  # every row is one of the PNGs, with its folder's label
        key = np.round(row * 255).astype(np.uint8).tobytes()
        assert pngs[key] == ["cat", "dog"][label]


def test_rgb_images_keep_or_convert_channels(image_folder, tmp_path):
    root = image_folder({"a": [(3, 5)] * 4}, mode="RGB")
    keep = prepare(DataConfig(source=f"imagefolder:{root}", test_fraction=0.25, scale="unit"), tmp_path / "k")
    gray = prepare(DataConfig(source=f"imagefolder:{root}", test_fraction=0.25, scale="unit", channels="gray"),
                   tmp_path / "g")
    assert keep.meta.shape == (3, 3, 5) and gray.meta.shape == (1, 3, 5)
    rgb, g = _all(keep.path, "train")[0].reshape(-1, 3, 3, 5), _all(gray.path, "train")[0].reshape(-1, 3, 5)
    assert np.allclose(g, np.einsum("nchw,c->nhw", rgb, [0.299, 0.587, 0.114]), atol=1e-6)


def _pq_dataset(n: int = 8):
    import datasets

    rng = np.random.default_rng(2)
    return datasets.Dataset.from_dict({"image": [Image.fromarray(rng.integers(0, 256, (3, 3), dtype=np.uint8))
                                                 for _ in range(n)], "label": [0, 1] * (n // 2)})


def test_parquet_file_and_directory(tmp_path):
    ds = _pq_dataset()
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "part.parquet"))
    f = prepare(DataConfig(source=f"parquet:{tmp_path / 'pq' / 'part.parquet'}", test_fraction=0.25), tmp_path / "f")
    d = prepare(DataConfig(source=f"parquet:{tmp_path / 'pq'}", test_fraction=0.25), tmp_path / "d")
    assert f.meta.shape == (1, 3, 3) and (f.meta.n_train, f.meta.n_test) == (6, 2)
    assert np.array_equal(_all(f.path, "train")[0], _all(d.path, "train")[0])


def test_pixel_values_column_of_lists(tmp_path):
    import datasets

    rows, labels = np.random.default_rng(3).random((6, 2, 2)).astype(np.float32), [0, 1, 2] * 2
    datasets.Dataset.from_dict({"pixel_values": rows.tolist(), "labels": labels}).to_parquet(str(tmp_path / "p.pq"))
    p = prepare(DataConfig(source=f"parquet:{tmp_path / 'p.pq'}", scale="unit", test_fraction=0.5), tmp_path / "o")
    x, y = _all(p.path, "train")
    assert p.meta.shape == (1, 2, 2) and p.meta.num_classes == 3 and len(x) == 3
    source = {r.reshape(-1).tobytes(): lab for r, lab in zip(rows, labels, strict=True)}
    assert all(source[r.tobytes()] == lab for r, lab in zip(x, y, strict=True))


def test_disk_dataset_and_datasetdict(tmp_path):
    import datasets

    ds = _pq_dataset()
    ds.save_to_disk(str(tmp_path / "one"))
    datasets.DatasetDict({"train": ds, "test": _pq_dataset(4)}).save_to_disk(str(tmp_path / "two"))
    one = prepare(DataConfig(source=f"disk:{tmp_path / 'one'}", test_fraction=0.25), tmp_path / "o1")
    two = prepare(DataConfig(source=f"disk:{tmp_path / 'two'}"), tmp_path / "o2")
    assert (one.meta.n_train, one.meta.n_test, one.meta.split.startswith("random")) == (6, 2, True)
    assert (two.meta.n_train, two.meta.n_test, two.meta.split) == (8, 4, "source")


def test_hf_local_folder_in_offline_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # anything touching the network would fail
    repo = tmp_path / "hf-repo" / "data"
    repo.mkdir(parents=True)
    _pq_dataset().to_parquet(str(repo / "train-00000-of-00001.parquet"))
    _pq_dataset(4).to_parquet(str(repo / "test-00000-of-00001.parquet"))
    p = prepare(DataConfig(source=f"hf:{tmp_path / 'hf-repo'}"), tmp_path / "hf")
    assert (p.meta.n_train, p.meta.n_test, p.meta.split, p.meta.shape) == (8, 4, "source", (1, 3, 3))


def test_hub_name_unreachable_fails_fast(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # whatever the shell says: take the probe path
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"not reachable.*HF_DATASETS_OFFLINE=1.*idx:DIR.*parquet:PATH"):
        prepare(DataConfig(source="hf:nobody/nothing"), tmp_path / "x")
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "x").exists()


def test_hub_probe_sees_an_answering_endpoint(monkeypatch):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert hub_reachable(timeout=2)  # any HTTP answer means reachable
    finally:
        server.shutdown()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not hub_reachable(timeout=2)


def test_hub_name_in_offline_mode_goes_to_the_cache_and_says_so(tmp_path):
    # datasets reads HF_DATASETS_OFFLINE at import, so the real offline path needs a fresh interpreter
    code = textwrap.dedent(f"""
        import time
        from pipeline.config import DataConfig
        from pipeline.data import prepare
        from pipeline.errors import DataError
        started = time.perf_counter()
        try:
            prepare(DataConfig(source="hf:nobody/nothing-at-all"), {str(tmp_path / "x")!r})
        except DataError as exc:
            print(f"{{time.perf_counter() - started:.2f}}|{{exc}}")
    """)
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    seconds, _, message = out.stdout.strip().partition("|")
    assert message, out.stderr[-2000:]
    assert float(seconds) < 5 and "Offline mode is on" in message and "idx:DIR" in message
    assert "\n" not in message and not (tmp_path / "x").exists()


def test_toy_mixture_points_and_modes(tmp_path):
    from models.toys.mixtures import mode_centres

    p = prepare(DataConfig(source="toy:ring8", toy_samples=400, seed=3), tmp_path / "t")
    q = prepare(DataConfig(source="toy:ring8", toy_samples=400, seed=3), tmp_path / "q")
    x, y = _all(p.path, "train")
    assert (p.meta.shape, p.meta.n_train + p.meta.n_test, p.meta.num_classes) == ((2,), 400, 8)
    assert np.array_equal(x, _all(q.path, "train")[0])
    # each point lies within 5σ (σ = 0.01) of the centre of the mode it is labelled with
    assert np.abs(x - mode_centres("ring8").numpy()[y]).max() < 0.05
    lo, hi = p.meta.value_range
    assert lo == min(x.min(), _all(p.path, "test")[0].min()) and hi >= x.max()


def test_hub_name_served_from_the_cache_in_offline_mode(tmp_path, monkeypatch):
    import datasets

    datasets.DatasetDict({"train": _pq_dataset(), "test": _pq_dataset(4)}).save_to_disk(str(tmp_path / "cache"))
    calls = []

    def cached_load_dataset(name, config=None):  # stands in for the Hub cache: Arrow files on disk
        calls.append((name, config))
        return datasets.load_from_disk(str(tmp_path / "cache"))

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets, "load_dataset", cached_load_dataset)
    monkeypatch.setattr("pipeline.data.hf.hub_reachable", lambda *a, **k: pytest.fail("probed while offline"))
    p = prepare(DataConfig(source="hf:someone/tiny:default"), tmp_path / "o")
    again = prepare(DataConfig(source="hf:someone/tiny:default"), tmp_path / "o")
    assert calls[0] == ("someone/tiny", "default") and (p.meta.n_train, p.meta.n_test) == (8, 4) and again.cached
