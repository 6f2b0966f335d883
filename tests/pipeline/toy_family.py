"""A model family defined entirely outside the package: its model (what a ``models/`` file would
hold), its config section and its recipe (what one ``pipeline/recipes/`` file would hold), and a
preset (a dict, as a preset YAML would read). Importing this module registers it; nothing in
``pipeline/`` or ``flows/`` knows it exists.

The model is a product of independent Bernoullis, p(x) = Π σ(bᵢ)^xᵢ (1 − σ(bᵢ))^(1−xᵢ), with
energy E(x) = −bᵀx and log Z = Σ softplus(bᵢ), so its likelihood, its maximum-likelihood solution
(bᵢ = logit of the data mean) and its exact sampler are all closed form.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from models.samplers.base import ChainState, Sampler
from pipeline.config import ModelConfig, register_model_config
from pipeline.recipes.base import Batch, Recipe, register_recipe
from pipeline.recipes.likelihood import LikelihoodResult

FAMILY = "toy-bernoulli"


# ------------------------------------------------------------------ the "models/" file
class IndependentBernoulli(nn.Module):
    def __init__(self, dim: int, init_logit: float = 0.0):
        super().__init__()
        self.logits = nn.Parameter(torch.full((dim,), init_logit))

    def forward(self, x: Tensor) -> Tensor:
        """Per-example energy −bᵀx."""
        return -(x.reshape(len(x), -1) @ self.logits)

    def log_partition(self) -> Tensor:
        return F.softplus(self.logits).sum()


class ExactBernoulliSampler(Sampler):
    """Every step is an independent exact draw."""

    name = "exact-bernoulli"

    def _draw(self, model: IndependentBernoulli, n: int, generator: torch.Generator | None) -> ChainState:
        x = torch.bernoulli(torch.sigmoid(model.logits.detach()).expand(n, -1), generator=generator)
        return ChainState(layers=[x], energy=model(x))

    def init(self, model, n, generator=None):
        return self._draw(model, n, generator)

    def step(self, model, state, k=1, generator=None):
        for _ in range(k):
            state = self._draw(model, state.num_chains, generator)
        return state


# ------------------------------------------------------------------ the recipe file
@register_model_config
class ToyBernoulliConfig(ModelConfig):
    family: Literal["toy-bernoulli"] = "toy-bernoulli"
    init_logit: float = Field(0.0, description="initial logit of every unit")


@register_recipe
class ToyBernoulliRecipe(Recipe):
    config_cls = ToyBernoulliConfig
    samplers = ("exact-bernoulli",)

    def build_modules(self) -> dict[str, nn.Module]:
        self.seen_examples = 0
        return {"model": IndependentBernoulli(self.data.dim, self.mcfg.init_logit)}

    def init_from_data(self, train_x: Tensor) -> None:
        self.seen_examples = int(train_x.shape[0])  # the engine calls the declared seam

    def train_step(self, batch: Batch) -> dict[str, float]:
        x = batch.x.reshape(len(batch.x), -1)
        nll = self.net("model")(x).mean() + self.modules["model"].log_partition()
        self.optimize("model", nll, batch)
        return {"nll": nll.item()}

    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        return self.modules["model"].eval(), ExactBernoulliSampler()

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008", ais_runner: Any = None) -> LikelihoodResult:
        model = self.modules["model"].cpu()
        with torch.no_grad():
            log_z = float(model.log_partition())
            ll = float((-model(test_x)).mean()) - log_z
        return LikelihoodResult("exact", ll, int(test_x.shape[0]), log_z=log_z)

    def state_dict(self) -> dict[str, Any]:
        return {"seen_examples": self.seen_examples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen_examples = state.get("seen_examples", 0)


# ------------------------------------------------------------------ the preset
def preset(root: str) -> dict[str, Any]:
    return {
        "name": "toy-bernoulli",
        "data": {"source": "digits", "image_size": 4, "resize": "bilinear", "scale": "unit",
                 "binarize": "threshold", "limit": 300},
        "model": {"family": FAMILY, "init_logit": 0.0},
        "train": {"epochs": 2, "batch_size": 50, "optimizer": "adam", "lr": 0.1, "eval_examples": 50},
        "sample": {"chains": 32, "steps": 6, "burn_in": 2, "thin": 2, "workers": 0, "chains_per_block": 8},
        "evaluate": {"metrics": ["fid"], "feature": "identity", "num_samples": 64, "likelihood": "exact"},
        "resources": {"num_workers": 0},
        "output": {"root": root},
    }
