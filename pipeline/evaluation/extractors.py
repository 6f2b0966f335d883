"""Feature extractors for the sample-quality metrics, registered by name.

Every metric result names the extractor it used. Extraction is a pure chunked function
(:func:`extract`), separate from the metrics, so features can be computed anywhere (several Ray
workers for large sample counts) and real-image features cached on disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipeline.errors import UserError


@dataclass
class Extractor:
    """``features`` gives (N, d) for FID/KID, ``logits`` (N, k) for IS; ``reason`` says why not available."""

    id: str
    label: str
    features: Callable[[Tensor], Tensor] | None = None
    logits: Callable[[Tensor], Tensor] | None = None
    reason: str = ""
    logits_reason: str = "the extractor has no class logits"

    @property
    def available(self) -> bool:
        return self.features is not None


@dataclass
class Context:
    """What an extractor may need: the prepared data and where caches go."""

    prepared_path: str
    fingerprint: str
    shape: tuple[int, ...]
    value_range: tuple[float, float]
    cache_dir: Path
    inception_weights: str | None = None


_BUILDERS: dict[str, Callable[[str, Context], Extractor]] = {}


def register_extractor(prefix: str):
    def wrap(fn: Callable[[str, Context], Extractor]) -> Callable[[str, Context], Extractor]:
        _BUILDERS[prefix] = fn
        return fn

    return wrap


# Extractors whose name carries an argument after the colon (torchscript:PATH).
_TAKES_ARGUMENT = {"torchscript"}


def feature_problem(name: str) -> str | None:
    """Why ``evaluate.feature=name`` names no extractor (None when it does); checked at config time."""
    prefix, colon, arg = name.partition(":")
    if prefix not in _BUILDERS:
        return (f"evaluate.feature={name!r} is not a known extractor; use one of "
                f"{', '.join(sorted(_BUILDERS))} (torchscript takes a path: torchscript:FILE)")
    if prefix in _TAKES_ARGUMENT and not arg.strip():
        return f"evaluate.feature={name!r} needs a path: {prefix}:/path/to/file.pt"
    if prefix not in _TAKES_ARGUMENT and colon:
        return f"evaluate.feature={name!r}: {prefix} takes no argument; use evaluate.feature={prefix}"
    return None


def missing_file(name: str) -> str | None:
    """Why the file an extractor names cannot be read now (None when it can, or names none); the
    pipeline checks this before training, the config only checks the name."""
    prefix, _, arg = name.partition(":")
    if prefix == "torchscript" and not Path(arg).expanduser().is_file():
        return f"evaluate.feature={name!r}: no TorchScript file at {Path(arg).expanduser()}; pass torchscript:/path/to/file.pt"
    return None


def get_extractor(name: str, ctx: Context) -> Extractor:
    problem = feature_problem(name)
    if problem:
        raise UserError(problem)
    return _BUILDERS[name.split(":", 1)[0]](name, ctx)


@torch.no_grad()
def extract(fn: Callable[[Tensor], Tensor], x: np.ndarray | Tensor, shape: tuple[int, ...],
            batch: int = 500, workers: int = 1, address: str | None = None) -> Tensor:
    """Apply ``fn`` to ``x`` (N, *shape) in chunks; float32 output on the CPU.

    With ``workers > 1`` the chunks are Ray tasks (the extractor is shipped once with ``ray.put``);
    features come back in order, so the metrics are the same as in-process.
    """
    from pipeline.fanout import fan_out

    xs = torch.as_tensor(np.array(x, dtype=np.float32)).reshape(-1, *shape)
    chunks = list(xs.split(batch))
    spread = workers if workers > 1 and len(chunks) > 1 else 0
    return torch.cat(fan_out(_apply, (fn,), [(c,) for c in chunks], spread, address=address,
                             setting="evaluate.workers"))


@torch.no_grad()
def _apply(fn: Callable[[Tensor], Tensor], chunk: Tensor) -> Tensor:
    return fn(chunk).float().cpu()


@register_extractor("identity")
def identity_extractor(name: str, ctx: Context) -> Extractor:
    """The raw (flattened) data as features: for closed-form tests and 2-D toys."""
    return Extractor("identity", "identity (raw values)", features=lambda x: x.reshape(len(x), -1))


@register_extractor("domain")
def domain_extractor(name: str, ctx: Context) -> Extractor:
    from pipeline.data import load_prepared
    from pipeline.evaluation.domain import load_or_train

    meta = load_prepared(ctx.prepared_path).meta
    if not meta.num_classes or len(meta.shape) != 3:
        return Extractor("domain", "domain classifier",
                         reason=f"the prepared data ({meta.source}) has no labels or is not an image set")
    model, info = load_or_train(ctx.cache_dir, ctx.prepared_path, ctx.fingerprint)
    label = f"domain: {meta.source} CNN, test acc {info['test_accuracy']:.1%}"
    return Extractor(f"domain:{ctx.fingerprint}", label, features=model.features, logits=model)


@register_extractor("torchscript")
def torchscript_extractor(name: str, ctx: Context) -> Extractor:
    """Any TorchScript feature network taking [0, 255] RGB images (e.g. NVIDIA's exported Inception).

    The calling convention is read from the module's signature, not guessed from its output:
    a ``forward(x, return_features: bool = False)`` module (NVIDIA's export) returns class
    probabilities by default and is called with ``return_features=True``; a plain ``forward(x)``
    must return features itself. Either way the output must be (N, d).
    """
    problem = missing_file(name)
    if problem:
        raise UserError(problem)
    path = Path(name.split(":", 1)[1]).expanduser()
    module = torch.jit.load(str(path), map_location="cpu").eval()
    call = torchscript_call(module)
    lo, hi = ctx.value_range

    def features(x: Tensor) -> Tensor:
        x = (x - lo) / (hi - lo) * 255.0
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        out = call(x)
        if out.dim() != 2:
            raise UserError(f"evaluate.feature={name!r}: the module returned shape {tuple(out.shape)}, not "
                            f"(N, features); export a module whose forward returns pool features")
        return out

    return Extractor(f"torchscript:{path.name}", f"TorchScript {path.name}", features=features)


def torchscript_call(module: torch.jit.ScriptModule) -> Callable[[Tensor], Tensor]:
    """How to get features out of ``module``: with ``return_features=True`` when its forward has
    that argument (NVIDIA's convention), else a plain call."""
    args = [a.name for a in module.forward.schema.arguments]
    if "return_features" in args:
        return lambda x: module(x, return_features=True)
    return module


@register_extractor("inception")
def inception_extractor(name: str, ctx: Context) -> Extractor:
    """The FID Inception-v3 from the standard weights file, or from the ``fid`` extra's TorchScript
    export when the standard file is absent (same features; no logits, so no Inception Score)."""
    from pipeline.evaluation.inception import FIDInceptionV3, find_weights

    found, searched = find_weights(ctx.inception_weights)
    if found is None:
        return Extractor("inception", "Inception-v3 (TF FID weights)",
                         reason="the standard FID Inception weights were not found; searched: "
                                + ", ".join(searched) + ". Set evaluate.inception_weights=PATH or install "
                                "the `fid` extra (see README, 'Metrics').")
    net = FIDInceptionV3.from_weights(found)
    lo, hi = ctx.value_range

    def prep(x: Tensor) -> Tensor:
        x = (x - lo) / (hi - lo)  # to [0, 1]; the network rescales to [-1, 1] itself
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x

    file = os.path.basename(found)
    logits = (lambda x: net.logits(prep(x))) if net.has_logits else None
    return Extractor(f"inception:{file}", f"Inception-v3 (TF FID weights {file})",
                     features=lambda x: net.pool_features(prep(x)), logits=logits,
                     logits_reason="" if logits else f"IS needs the standard weights' logits; {file} "
                                                     f"ends at the pool layer")
