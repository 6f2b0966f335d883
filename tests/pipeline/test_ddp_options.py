"""DDP's static graph changes nothing a recipe computes: two gloo processes (no Ray), same steps.

Each recipe runs a few steps on two workers with the engine's Accelerator
(:func:`pipeline.engine.make_accelerator`), once with the options the engine picks (a static graph
where ``Recipe.ddp_static_graph`` allows it) and once with DDP's default dynamic graph; the
parameters must agree to float precision, and exactly across the two ranks. The GANs matter
most here: D is called on real and fake data in one forward, and the G step calls D again
unwrapped (with WGAN-GP, a double backward through the DDP-wrapped critic).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from pipeline.config import load_config
from pipeline.recipes.base import Batch, DataShape, recipe_class
from tests.ports import free_port

pytestmark = pytest.mark.slow  # two processes, each importing torch and accelerate (about 20 s)

STEPS = 4
CASES = {
    "gan": ("gan-ring8", ["model.hidden=16"], DataShape((2,), (-1.5, 1.5), False)),
    "wgan-gp": ("wgan-gp-ring8", ["model.hidden=16", "model.n_critic=2"], DataShape((2,), (-1.5, 1.5), False)),
    "dcgan": ("dcgan-fashion", ["model.hidden=4", "model.latent_dim=8"], DataShape((1, 28, 28), (-1.0, 1.0), False)),
    "rbm": ("rbm-digits", ["model.n_hidden=8"], DataShape((64,), (0.0, 1.0), True)),
    "ebm": ("ebm-ring8", ["model.hidden=16", "model.langevin_steps=2", "model.buffer_size=64"],
            DataShape((2,), (-1.5, 1.5), False)),
}


def _worker(rank: int, case: str, static: bool | None, port: int, out: str) -> None:
    from accelerate.utils import set_seed

    from pipeline.engine import make_accelerator

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    preset, extra, shape = CASES[case]
    cfg = load_config(preset, [*extra, "train.batch_size=16"])
    cls = recipe_class(cfg.model.family)
    accelerator = make_accelerator(cfg, cls, static_graph=static)
    assert accelerator.num_processes == 2
    set_seed(cfg.train.seed)
    recipe = cls(cfg, shape)
    recipe.setup(accelerator)
    data = torch.Generator().manual_seed(100 + rank)
    for step in range(STEPS):
        torch.manual_seed(1000 * rank + step)
        x = torch.rand((8, *shape.shape), generator=data) * 2 - 1
        if shape.binary:
            x = (x > 0).float()
        recipe.train_step(Batch(x=x, y=None, weight=1.0, step=step, epoch=0, log=step % 2 == 1))
    params = {f"{n}.{k}": v.detach().clone() for n, m in recipe.modules.items() for k, v in m.named_parameters()}
    torch.save(params, f"{out}.{rank}")
    accelerator.end_training()


def _run(case: str, static: bool | None, tmp_path) -> list[dict[str, torch.Tensor]]:
    out = str(tmp_path / f"{case}-{static}")
    mp.spawn(_worker, args=(case, static, free_port(), out), nprocs=2, join=True)
    return [torch.load(f"{out}.{r}") for r in range(2)]


EXPECTED = {"gan": True, "wgan-gp": False, "dcgan": True, "rbm": True, "ebm": True}


@pytest.mark.parametrize("case", list(CASES))
def test_the_engines_ddp_options_take_the_same_steps(case, tmp_path):
    """The engine's choice (static where the recipe allows it) against DDP's default."""
    preset, extra, _ = CASES[case]
    cfg = load_config(preset, extra)
    cls = recipe_class(cfg.model.family)
    assert cls.ddp_static_graph(cfg) is EXPECTED[case] and not cls.trains_layerwise
    chosen, dynamic = _run(case, None, tmp_path), _run(case, False, tmp_path)
    for k, v in dynamic[0].items():
        assert torch.allclose(chosen[0][k], v, atol=1e-5), (k, (chosen[0][k] - v).abs().max())
        assert torch.equal(chosen[0][k], chosen[1][k]), k  # replicas stay identical


def test_a_static_graph_breaks_the_gradient_penalty(tmp_path):
    """Why WGAN-GP opts out: with static_graph its two workers' critics drift apart."""
    static = _run("wgan-gp", True, tmp_path)
    assert any(not torch.equal(static[0][k], static[1][k]) for k in static[0] if k.startswith("D."))
