"""The recipe interface: everything a model family tells the training engine, nothing more.

A family implements ``build_modules``, ``train_step`` and ``sampler`` (and usually
``epoch_metrics``) and names its ``samplers``; every other hook the engine or a stage may call
is declared below with its type and a default, so nothing is found by probing (``hasattr``).
The engine (``pipeline.engine``) owns devices, DDP through Accelerate, data sharding, gradient
accumulation, precision, seeding, metric reporting, checkpoints and resume.

Rule for speed: ``train_step`` returns detached 0-d tensors (or plain Python numbers), never
``.item()``-ed floats. The engine sums them on the device and reads them back once every
``train.log_every`` steps, so a step never waits for the device (on a GPU each ``.item()`` stalls
the launch queue). Work done only for metrics (gradient norms, discriminator statistics) belongs
under ``if batch.log:``, which is true exactly on the steps whose metrics the engine reads back.

Rule for DDP: a loss must be computed by *calling* a prepared module (``self.net("model")(x)``),
never one of its methods, because DistributedDataParallel synchronises gradients only through
``forward``. Energy models therefore return per-example (free) energies from ``forward``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from models.samplers.base import Sampler
from pipeline.config import ModelConfig, RunConfig, TrainConfig, family_of
from pipeline.data.meta import DataShape
from pipeline.errors import ConfigError
from pipeline.recipes.likelihood import AISRunner, LikelihoodResult

RECIPES: dict[str, type[Recipe]] = {}


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: make ``cls`` the recipe of its config's family (the family name is spelled
    once, in the ``family: Literal[...]`` field of the family's ``ModelConfig``)."""
    cls.family = family_of(cls.config_cls)
    if not cls.samplers:
        raise TypeError(f"{cls.__name__}.samplers must name at least one sampler (the default first)")
    RECIPES[cls.family] = cls
    return cls


def recipe_class(family: str) -> type[Recipe]:
    import pipeline.recipes  # noqa: F401  (registers every family)

    if family not in RECIPES:
        raise KeyError(f"no recipe for model.family={family!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[family]


@dataclass
class Batch:
    """One worker's share of a global batch.

    ``weight`` = local_size * world_size / global_size: multiplying a per-worker *mean* loss by it
    makes DDP's gradient average equal the gradient of the global-batch mean, even when the last
    batch of an epoch does not split evenly.
    """

    x: Tensor
    y: Tensor | None
    weight: float
    step: int
    epoch: int
    # True on the steps whose metrics the engine reads back (every train.log_every-th and the
    # last of an epoch): compute costly diagnostics only then. Direct callers get them always.
    log: bool = True


class Recipe(ABC):
    """One model family's training procedure (see the module docstring)."""

    family: ClassVar[str]  # set by @register_recipe from config_cls
    config_cls: ClassVar[type[ModelConfig]]
    # Names ``sample.sampler`` may take for this family; the first is what ``null`` means.
    samplers: ClassVar[tuple[str, ...]] = ()
    # True when some steps leave parameters without gradients (greedy layer-wise phases):
    # DDP must then look for unused parameters every step.
    trains_layerwise: ClassVar[bool] = False

    def __init__(self, cfg: RunConfig, data: DataShape):
        self.cfg = cfg
        self.mcfg: Any = cfg.model
        self.data = data
        self.modules: dict[str, nn.Module] = self.build_modules()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.wrapped: dict[str, nn.Module] = {}  # the modules as Accelerate prepared them (setup)
        self.accelerator: Any = None
        self.device = torch.device("cpu")
        self._grad_buffers: dict[str, Tensor] = {}  # flat gradients of closed-form steps (gradient_views)
        self._reducers: dict[str, Callable[[Tensor], None]] = {}  # their sum over the workers, per buffer

    # ------------------------------------------------------------------ what a family defines
    @abstractmethod
    def build_modules(self) -> dict[str, nn.Module]:
        """The family's networks, freshly initialised on the CPU (seeded by the engine)."""

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Default: one optimiser named after each module, from the ``train`` section."""
        return {name: make_optimizer(m.parameters(), self.cfg.train) for name, m in self.modules.items()
                if any(p.requires_grad for p in m.parameters())}

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, Tensor | float]:
        """One optimisation step on a batch; returns 0-d detached tensors (see the module docstring)."""

    @classmethod
    def ddp_static_graph(cls, cfg: RunConfig) -> bool:
        """True when every step runs the same forward/backward pattern on each DDP-wrapped module,
        so DDP may record the graph once (``static_graph``) instead of re-checking it every step.
        Default False; a family that returns True must pass tests/pipeline/test_ddp_options.py."""
        return False

    def metric_limits(self) -> dict[str, tuple[float, str]]:
        """Divergence guards: metric name → (largest allowed |value|, the setting that sets it).

        The engine tracks each named metric's largest |value| on the device and, at its next
        read-back, stops every worker together when one went over (then restores the last good
        checkpoint and calls ``on_divergence_restart`` when the recipe defines it). This costs no
        host synchronisation per step. A recipe may still raise TrainingDiverged itself, but only
        after its optimiser step: the engine then keeps that worker stepping in lockstep with the
        others until the read-back, where all of them stop together (so DDP cannot deadlock).
        """
        return {}

    def epoch_metrics(self, train_x: Tensor, test_x: Tensor) -> dict[str, float]:
        """Per-epoch metrics on small held-out slices (rank 0, unwrapped modules, no grad)."""
        return {}

    @abstractmethod
    def sampler(self, name: str | None = None) -> tuple[nn.Module, Sampler]:
        """The model and sampler the sampling stage runs chains with (``name``: one of
        :attr:`samplers`, already checked by :meth:`check_sampler`; None = the first)."""

    @classmethod
    def sampler_problem(cls, name: str | None) -> str | None:
        """Why ``sample.sampler=name`` cannot be used with this family (None when it can)."""
        if name is None or name in cls.samplers:
            return None
        return (f"sample.sampler={name!r} is not a sampler of the {cls.family} family; use one of "
                f"{', '.join(cls.samplers)} (or null for {cls.samplers[0]})")

    @classmethod
    def check_sampler(cls, name: str | None) -> None:
        problem = cls.sampler_problem(name)
        if problem:
            raise ConfigError(problem)

    def init_from_data(self, train_x: Tensor) -> None:
        """Called once before training with the whole training split (N, D) on the CPU, e.g. to
        set visible biases from the data marginals. Default: nothing."""

    def guard_max_restarts(self) -> int:
        """How often the engine may restore the last good checkpoint after a divergence and call
        :meth:`on_divergence_restart` before it gives up (0: a divergence stops the run)."""
        return 0

    def on_divergence_restart(self, attempt: int) -> None:
        """After the engine restored the last good checkpoint (attempt 1, 2, ...): adapt, e.g.
        lower the learning rate and reseed the chains."""

    def likelihood(self, test_x: Tensor, method: str = "auto", ais_runs: int = 100,
                   schedule: str = "salakhutdinov2008",
                   ais_runner: AISRunner | None = None) -> LikelihoodResult | None:
        """Mean test log-likelihood (``method`` = auto | exact | ais); None when the family has
        none (GANs, deep EBMs). ``ais_runner`` spreads AIS runs over workers."""
        return None

    def fixed_samples(self, n: int = 64) -> Tensor | None:
        """Samples from a fixed latent batch (the same every call), for progress grids; None when
        the family has no such thing."""
        return None

    def rank_seed(self, stream: int = 0) -> int:
        """This worker's seed for (train.seed, rank, stream): ranks draw different chains and a run
        is reproducible for a given world size (the one place this formula lives)."""
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        return self.cfg.train.seed * 1000 + rank + 7919 * stream

    def rank_generator(self, stream: int = 0) -> torch.Generator:
        """A generator on this worker's device seeded with :meth:`rank_seed`."""
        return torch.Generator(device=self.device).manual_seed(self.rank_seed(stream))

    def guard_metrics(self, batch: Batch) -> dict[str, Tensor]:
        """Extra 0-d tensors for the guards of ``metric_limits`` (e.g. a parameter magnitude),
        computed by the engine after the logging steps' optimiser step only: they are checked on
        the device at the read-back that follows, so they cost no host synchronisation."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Training state beyond module/optimiser parameters (persistent chains, buffers, EMA)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def after_setup(self) -> None:
        """Hook run once modules are on their device (e.g. allocate persistent chains)."""

    # ------------------------------------------------------------------ provided by the engine
    def setup(self, accelerator: Any) -> None:
        """Place modules/optimisers with Accelerate (DDP when several workers)."""
        self.accelerator = accelerator
        self.device = accelerator.device
        self.optimizers = self.build_optimizers()
        names = list(self.modules)
        opt_names = list(self.optimizers)
        prepared = accelerator.prepare(*[self.modules[n] for n in names],
                                       *[self.optimizers[n] for n in opt_names])
        if not isinstance(prepared, (tuple, list)):
            prepared = (prepared,)
        self.wrapped = dict(zip(names, prepared[: len(names)]))
        self.optimizers = dict(zip(opt_names, prepared[len(names):]))
        # The recipe's own state is not registered with Accelerate, which unpickles custom state
        # without torch's weights-only restriction. The engine restores it from the checkpoint's model.pt.
        self.after_setup()

    def net(self, name: str) -> nn.Module:
        """The module to call in a loss (DDP-wrapped when distributed)."""
        return self.wrapped[name] if self.wrapped else self.modules[name]

    def optimize(self, name: str, loss: Tensor, batch: Batch) -> None:
        """zero_grad, backward of ``loss * batch.weight``, optional clipping, step.

        Gradients are cleared *before* the backward (a no-op for Accelerate while it accumulates),
        so gradients another player's loss left on these parameters never leak into this step,
        and they stay readable after the step for gradient-norm metrics.
        """
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        if self.accelerator is None:
            (loss * batch.weight).backward()
        else:
            self.accelerator.backward(loss * batch.weight)
        clip = self.cfg.train.grad_clip
        if clip is not None:
            params = [p for g in opt.param_groups for p in g["params"]]
            if self.accelerator is None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            elif self.accelerator.sync_gradients:
                self.accelerator.clip_grad_norm_(params, clip)
        opt.step()


    def gradient_views(self, name: str, params: list[nn.Parameter]) -> list[Tensor]:
        """One view per parameter into a flat gradient buffer owned by optimiser ``name``, also set
        as each parameter's ``.grad``: a closed-form step writes its gradients into them in place
        (``out=``), and :meth:`apply_gradients` then averages the whole buffer over the workers in
        one all-reduce without gathering the pieces first (a copy of every gradient per step)."""
        size = sum(p.numel() for p in params)
        flat = self._grad_buffers.get(name)
        if flat is None or flat.numel() != size or flat.device != params[0].device or flat.dtype != params[0].dtype:
            flat = self._grad_buffers[name] = torch.empty(size, device=params[0].device, dtype=params[0].dtype)
            self._reducers.pop(name, None)  # sized for the old buffer
        views, offset = [], 0
        for p in params:
            view = flat[offset:offset + p.numel()].view_as(p)
            p.grad = view
            views.append(view)
            offset += p.numel()
        return views

    def apply_gradients(self, name: str, batch: Batch) -> None:
        """Optimiser ``name``'s step from the gradients a closed-form step wrote into
        :meth:`gradient_views` (each the gradient of this worker's mean loss): scaled by
        ``batch.weight`` and averaged over the workers exactly as DDP averages a backward's (the
        scale and the 1/world of the mean folded into one pass, then one in-place all-reduce of the
        flat buffer, through shared memory among workers on one machine), then clipped and stepped like :meth:`optimize`. For recipes whose gradient
        needs no autograd graph (the RBM's CD update); only without gradient accumulation
        (:meth:`closed_form_allowed`)."""
        opt = self.optimizers[name]
        flat = self._grad_buffers[name]
        world = self.accelerator.num_processes if self.accelerator is not None else 1
        scale = batch.weight / world
        if scale != 1.0:
            flat.mul_(scale)
        if world > 1:  # through shared memory when every worker is on this machine (pipeline/node_reduce.py)
            if name not in self._reducers:
                from pipeline.node_reduce import group_all_reduce

                self._reducers[name] = group_all_reduce(flat)
            self._reducers[name](flat)
        clip = self.cfg.train.grad_clip
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
        # torch's own optimiser, not Accelerate's wrapper: these gradients come from no (scaled)
        # backward, and the wrapper's per-step checks (e.g. whether LOMO is installed) cost ~1 %
        getattr(opt, "optimizer", opt).step()

    def closed_form_allowed(self) -> bool:
        """Whether :meth:`apply_gradients` may replace a backward: not while accumulating gradients
        over several steps, which Accelerate's backward/optimiser pair does for the autograd path."""
        return self.cfg.train.grad_accum_steps <= 1


def make_optimizer(params: Any, train: TrainConfig, lr: float | None = None,
                   kind: str | None = None, betas: tuple[float, float] | None = None) -> torch.optim.Optimizer:
    """An optimiser from the ``train`` section; keyword arguments override it (GANs' two optimisers).

    Adam uses torch's fused kernel (one pass over each parameter, on CPU and GPU alike): the same
    update as the default per-tensor loop up to float rounding, measured here on the DCGAN
    generator's 1.8M parameters at 0.8 ms a step against 5.7 ms (about 4 % of a DCGAN step). SGD
    keeps the default: its fused kernel gained 0.05 ms on the RBM's 393k parameters, and in torch
    2.13 it fails when only some parameters have momentum buffers (the DBM's layer-wise phases).
    RMSprop has no fused kernel."""
    kind = kind or train.optimizer
    lr = lr if lr is not None else train.lr
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=train.momentum, weight_decay=train.weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas or train.betas, weight_decay=train.weight_decay,
                                fused=True)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=train.momentum, weight_decay=train.weight_decay)
    raise ValueError(f"train.optimizer={kind!r} is not one of sgd, adam, rmsprop")
