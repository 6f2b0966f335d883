"""GAN recipe driven as the engine drives it (accelerator=None): the D/G cycle and its resume,
clipping, separate optimisers, EMA, metrics, samples, config errors and the presets' paper defaults."""

from __future__ import annotations

import copy

import pytest
import torch

from models.toys.mixtures import sample_mixture
from pipeline.config import ConfigError, load_config
from pipeline.recipes.base import Batch, DataShape
from pipeline.recipes.gan import GANRecipe

TOY = DataShape(shape=(2,), value_range=(-1.5, 1.5), binary=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(*overrides: str, shape: DataShape = TOY, preset: str | None = None) -> GANRecipe:
    base = [] if preset else ["model.family=gan", "train.optimizer=adam", "train.lr=0.001", "model.hidden=32",
                              "model.latent_dim=4"]
    torch.manual_seed(0)  # the engine seeds before building the modules
    r = GANRecipe(load_config(preset, [*base, *overrides]), shape)
    r.optimizers = r.build_optimizers()
    r.after_setup()
    return r


def _batch(step: int, n: int = 32) -> Batch:
    x, _ = sample_mixture("ring8", n, torch.Generator().manual_seed(step))
    return Batch(x=x, y=None, weight=1.0, step=step, epoch=0)


def _run(r: GANRecipe, steps: range) -> list[dict[str, float]]:
    out = []
    for s in steps:
        torch.manual_seed(1000 + s)  # the engine's per-epoch seeding, made per-step for exact replays
        out.append(r.train_step(_batch(s)))
    return out


def _params(r: GANRecipe) -> list[torch.Tensor]:
    return [p.detach().clone() for m in r.modules.values() for p in m.parameters()]


def test_n_critic_counts_discriminator_steps_and_g_metrics_are_carried():
    r = _recipe("model.loss=wgan-gp", "model.n_critic=3")
    metrics = _run(r, range(7))
    assert [m["g_step"] for m in metrics] == [0, 0, 1, 0, 0, 1, 0]
    assert "g_loss" not in metrics[0] and metrics[3]["g_loss"] == metrics[2]["g_loss"]
    assert metrics[5]["g_loss"] != metrics[2]["g_loss"]
    assert r.state_dict()["d_steps"] == 7
    assert {"d_loss", "gradient_penalty", "wasserstein_estimate", "critic_real", "critic_fake",
            "grad_norm_d"} <= set(metrics[0])
    assert metrics[0]["wasserstein_estimate"] == pytest.approx(metrics[0]["critic_real"] - metrics[0]["critic_fake"])


def test_resume_continues_the_cycle_and_matches_an_uninterrupted_run():
    opts = ("model.loss=wgan-gp", "model.n_critic=3", "model.ema=0.9")
    straight = _recipe(*opts)
    _run(straight, range(8))

    first = _recipe(*opts)
    _run(first, range(4))  # stops one D step into the second cycle
    saved = copy.deepcopy({"modules": {k: m.state_dict() for k, m in first.modules.items()},
                           "optim": {k: o.state_dict() for k, o in first.optimizers.items()},
                           "state": first.state_dict()})
    resumed = _recipe(*opts)
    for k, m in resumed.modules.items():
        m.load_state_dict(saved["modules"][k])
    for k, o in resumed.optimizers.items():
        o.load_state_dict(saved["optim"][k])
    resumed.load_state_dict(saved["state"])
    metrics = _run(resumed, range(4, 8))

    assert [m["g_step"] for m in metrics] == [0, 1, 0, 0]  # G steps at D steps 6 (not 7): the cycle went on
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema_G.parameters(), resumed.ema_G.parameters()):
        assert torch.equal(a, b)


def test_wgan_clipping_keeps_every_critic_weight_in_range_after_each_step():
    r = _recipe("model.loss=wgan", "model.clip=0.01", "train.optimizer=rmsprop", "train.lr=0.5")
    for s in range(3):
        r.train_step(_batch(s))
        flat = torch.cat([p.flatten() for p in r.modules["D"].parameters()])
        assert flat.abs().max() <= 0.01 and (flat.abs() == 0.01).any()


def test_each_step_moves_only_its_own_player():
    r = _recipe("model.loss=nonsaturating", "model.n_critic=2")
    G0 = [p.detach().clone() for p in r.modules["G"].parameters()]
    D0 = [p.detach().clone() for p in r.modules["D"].parameters()]
    m = _run(r, range(1))[0]  # D step only
    assert all(torch.equal(a, b) for a, b in zip(G0, r.modules["G"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(D0, r.modules["D"].parameters()))
    assert 0 < m["d_x"] < 1 and 0 < m["d_g_z"] < 1 and m["grad_norm_d"] > 0
    # the G step: D is frozen (no gradient computed, no step), G moves
    for p in r.modules["D"].parameters():
        p.grad = None
    D1 = [p.detach().clone() for p in r.modules["D"].parameters()]
    G1 = [p.detach().clone() for p in r.modules["G"].parameters()]
    r._generator_step(_batch(1))
    assert all(p.grad is None and p.requires_grad for p in r.modules["D"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(D1, r.modules["D"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(G1, r.modules["G"].parameters()))


def test_separate_optimisers_take_per_network_overrides():
    r = _recipe("train.optimizer=adam", "train.lr=0.001", "model.lr_d=0.004", "model.betas_g=[0.0, 0.9]",
                "model.optimizer_d=rmsprop")
    g, d = r.optimizers["G"], r.optimizers["D"]
    assert isinstance(g, torch.optim.Adam) and g.param_groups[0]["lr"] == 0.001
    assert g.param_groups[0]["betas"] == (0.0, 0.9)
    assert isinstance(d, torch.optim.RMSprop) and d.param_groups[0]["lr"] == 0.004
    assert {id(p) for p in g.param_groups[0]["params"]} == {id(p) for p in r.modules["G"].parameters()}


def test_ema_generator_follows_the_exponential_average():
    r = _recipe("model.ema=0.75")
    before = [p.detach().clone() for p in r.ema_G.parameters()]
    _run(r, range(1))
    for e, e0, p in zip(r.ema_G.parameters(), before, r.modules["G"].parameters()):
        assert torch.allclose(e, 0.75 * e0 + 0.25 * p.detach())
    model, sampler = r.sampler()
    assert model is r.ema_G and sampler.latent_dim == 4


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_dcgan_steps_run_on_image_shapes(shape):
    r = _recipe("model.net=dcgan", "model.hidden=8", "model.latent_dim=16",
                shape=DataShape(shape=shape, value_range=(-1.0, 1.0), binary=False))
    metrics = r.train_step(Batch(torch.rand(4, *shape) * 2 - 1, None, 1.0, 0, 0))
    assert {"d_loss", "g_loss", "d_x", "d_g_z", "grad_norm_g"} <= set(metrics)
    assert metrics["grad_norm_g"] > 0
    assert r.fixed_samples().shape == (64, *shape)
    assert r.modules["G"].training  # sampling restored training mode


def test_fixed_samples_use_the_same_noise_every_call():
    r = _recipe()
    a, b = r.fixed_samples(), r.fixed_samples()
    assert a.shape == (64, 2) and torch.equal(a, b)
    _run(r, range(1))
    assert not torch.equal(a, r.fixed_samples())  # same z, updated G


def test_epoch_metrics_report_mode_coverage_on_toys():
    r = _recipe("model.loss=hinge", "data.source=toy:ring8")
    x, _ = sample_mixture("ring8", 100, torch.Generator().manual_seed(0))
    m = r.epoch_metrics(x, x)
    assert {"critic_real_test", "critic_fake_test", "modes_covered", "high_quality_fraction", "reverse_kl"} <= set(m)
    assert "wasserstein_estimate_test" not in m  # a hinge critic's gap is not a W1 estimate


def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(ConfigError, match="model.clip=0.01"):
        load_config(None, ["model.family=gan", "model.loss=wgan"])
    with pytest.raises(ConfigError, match="model.clip=0.01 is WGAN weight clipping"):
        load_config(None, ["model.family=gan", "model.loss=hinge", "model.clip=0.01"])
    with pytest.raises(ConfigError, match="model.net=dcgan needs image data"):
        _recipe("model.net=dcgan")
    with pytest.raises(ConfigError, match="train.grad_accum_steps=2"):
        _recipe("train.grad_accum_steps=2")
    with pytest.raises(ConfigError, match="sample.sampler='gibbs' is not a sampler of the gan family; use one of ancestral"):
        load_config(None, ["model.family=gan", "sample.sampler=gibbs"])  # at config time, before training


@pytest.mark.parametrize("name, expected", [
    ("wgan-ring8", {"optimizer": "rmsprop", "lr": 5e-5, "clip": 0.01, "n_critic": 5}),
    ("wgan-fashion", {"optimizer": "rmsprop", "lr": 5e-5, "clip": 0.01, "n_critic": 5}),
    # the toy settings of Gulrajani et al.'s gan_toy.py: λ = 0.1, β1 = 0.5 (λ = 10 oscillates on the ring)
    ("wgan-gp-ring8", {"optimizer": "adam", "lr": 1e-4, "betas": (0.5, 0.9), "gp_lambda": 0.1, "n_critic": 5}),
    ("wgan-gp-fashion", {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "gp_lambda": 10.0, "n_critic": 5}),
    ("dcgan-fashion", {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1}),
])
def test_presets_carry_the_papers_defaults(name, expected):
    cfg = load_config(name)
    found = {k: getattr(cfg.train, k, None) if k in ("optimizer", "lr", "betas") else getattr(cfg.model, k)
             for k in expected}
    assert found == expected


@pytest.mark.parametrize("name", ["gan-ring8", "nsgan-ring8", "wgan-ring8", "wgan-gp-ring8", "gan-grid25",
                                  "dcgan-fashion", "wgan-fashion", "wgan-gp-fashion", "gan-digits"])
def test_every_gan_preset_builds_and_steps(name):
    cfg = load_config(name)
    shape = (2,) if cfg.data.source.startswith("toy:") else ((1, 8, 8) if cfg.data.source == "digits" else (1, 28, 28))
    small = ["model.hidden=8"] if len(shape) == 3 else []  # the preset's own width only costs time here
    r = _recipe(*small, preset=name, shape=DataShape(shape=shape, value_range=(-1.0, 1.0), binary=False))
    metrics = r.train_step(Batch(torch.rand(4, *shape) * 2 - 1, None, 1.0, 0, 0))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_accelerate_checkpoint_holds_both_players_their_optimisers_and_the_cycle(tmp_path):
    """As the engine does: setup(accelerator), save_state plus the recipe state in model.pt, then a
    fresh recipe restores both (pipeline.engine.load_checkpoint, weights_only=True for the state)."""
    from accelerate import Accelerator

    opts = ("model.loss=wgan-gp", "model.n_critic=3", "model.ema=0.9")

    def built() -> tuple[GANRecipe, Accelerator]:
        torch.manual_seed(0)
        acc = Accelerator(cpu=True)
        r = GANRecipe(load_config(None, ["model.family=gan", "train.optimizer=adam", "model.hidden=16",
                                         "model.latent_dim=4", *opts]), TOY)
        r.setup(acc)
        return r, acc

    straight, _ = built()
    _run(straight, range(6))
    first, acc = built()
    _run(first, range(4))
    from pipeline.engine import load_checkpoint

    acc.save_state(str(tmp_path / "ckpt" / "accelerate"))
    torch.save({"state": first.state_dict()}, tmp_path / "ckpt" / "model.pt")
    resumed, acc2 = built()
    load_checkpoint(acc2, resumed, tmp_path / "ckpt")
    assert resumed.d_steps == 4 and resumed.last_g == first.last_g
    _run(resumed, range(4, 6))
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema_G.parameters(), resumed.ema_G.parameters()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ stabilisers: DiffAugment, R1, LeCam, BN in D

IMAGES = DataShape(shape=(1, 8, 8), value_range=(-1.0, 1.0), binary=False, num_classes=10)


def _image_batch(step: int, n: int = 16) -> Batch:
    g = torch.Generator().manual_seed(step)
    return Batch(x=torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, y=None, weight=1.0, step=step, epoch=0)


def _image_recipe(*overrides: str) -> GANRecipe:
    return _recipe("model.net=dcgan", "model.hidden=8", *overrides, shape=IMAGES)


@pytest.mark.parametrize("overrides, metric", [
    (["model.augment=[color,translation,cutout]"], None),
    (["model.r1_gamma=1.0"], "r1_penalty"),
    (["model.lecam_lambda=0.3"], "lecam_penalty"),
    (["model.d_batch_norm=true"], None),
    (["model.loss=wgan-gp", "model.augment=[translation]"], "gradient_penalty"),
])
def test_each_stabiliser_trains_and_reports_its_penalty(overrides, metric):
    r = _image_recipe(*overrides)
    before = _params(r)
    metrics = [r.train_step(_image_batch(s)) for s in range(3)]
    assert all(torch.isfinite(torch.tensor(list(m.values()))).all() for m in metrics)
    assert any(not torch.equal(a, b) for a, b in zip(before, _params(r)))
    if metric:
        assert metrics[-1][metric] > 0.0


def test_d_batch_norm_puts_a_batch_norm_layer_in_d():
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in _image_recipe("model.d_batch_norm=true").modules["D"].modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in _image_recipe().modules["D"].modules())


def test_r1_penalty_in_the_recipe_equals_the_formula_on_the_same_batch():
    r = _image_recipe("model.r1_gamma=2.0")
    x = _image_batch(0).x.requires_grad_(True)
    logits = r.modules["D"](x)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    expected = (grad.pow(2).flatten(1).sum(1).mean()).item()  # γ/2 = 1
    torch.manual_seed(5)
    got = r._critic_step(Batch(x=x.detach(), y=None, weight=1.0, step=0, epoch=0))[0]["r1_penalty"]
    assert got == pytest.approx(expected, rel=1e-5)


def test_lecam_anchors_are_checkpointed_with_the_recipe_state():
    r = _image_recipe("model.lecam_lambda=0.3")
    r.train_step(_image_batch(0))
    state = r.state_dict()
    fresh = _image_recipe("model.lecam_lambda=0.3")
    fresh.load_state_dict(copy.deepcopy(state))
    assert torch.equal(fresh.lecam.ema_real, r.lecam.ema_real) and torch.equal(fresh.lecam.ema_fake, r.lecam.ema_fake)


@pytest.mark.parametrize("overrides, match", [
    (["model.d_batch_norm=true", "model.loss=wgan-gp"], "per-example gradient"),
    (["model.d_batch_norm=true", "model.r1_gamma=1"], "per-example gradient"),
])
def test_batch_norm_with_a_gradient_penalty_is_refused_at_config_time(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["model.family=gan", "model.net=dcgan", *overrides])


def test_diffaugment_on_toy_points_is_refused():
    with pytest.raises(ConfigError, match="DiffAugment transforms images"):
        _recipe("model.augment=[color]")
