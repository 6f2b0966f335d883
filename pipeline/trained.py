"""Loading a trained run for the downstream stages (sampling, evaluation, report)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import load_torch, verify_digest
from pipeline.config import RunConfig, validate_config
from pipeline.data import DataShape, PreparedData, load_prepared
from pipeline.data.meta import META
from pipeline.errors import UserError
from pipeline.recipes.base import Recipe, recipe_class
from pipeline.rundir import RunDir


@dataclass
class TrainedModel:
    cfg: RunConfig
    recipe: Recipe
    data: PreparedData
    epoch: int
    step: int
    run_dir: RunDir


def load_trained(run_dir: str | Path | RunDir) -> TrainedModel:
    """Rebuild the recipe on the CPU from ``model.pt`` (modules in eval mode, training state restored)."""
    run_dir = RunDir.at(run_dir)
    path = run_dir.local_model()  # fetched from output.storage when this machine has no copy
    if not path.exists():
        raise UserError(f"run: {run_dir} has no {path.name}; train it first (boltzgan train PRESET) "
                        f"or pass the directory of a finished run")
    blob = load_model_file(path)
    cfg = validate_config(blob["config"])
    shape = blob["data_shape"]
    data_shape = DataShape(shape=tuple(shape["shape"]), value_range=tuple(shape["value_range"]),
                           binary=shape["binary"], num_classes=shape.get("num_classes"))
    recipe = recipe_class(blob["family"])(cfg, data_shape)
    for name, state in blob["modules"].items():
        recipe.modules[name].load_state_dict(state)
        recipe.modules[name].eval()
    recipe.load_state_dict(blob.get("state", {}))
    data = prepared_data_of(run_dir)
    return TrainedModel(cfg, recipe, data, blob["epoch"], blob["step"], run_dir)


def prepared_data_of(run_dir: RunDir) -> PreparedData | None:
    """The run's prepared data: the recorded local directory when this machine has it, else the
    copy in output.storage through this node's cache (None when the run records no data)."""
    ref = run_dir.data_ref()
    if ref is None:
        return None
    stored = ref.get("stored")
    if stored and run_dir.store is not None and not Path(ref["path"], META).is_file():
        from pipeline.data import mirror
        from pipeline.rundir import run_store

        root = run_store(run_dir.read_config())
        if root is not None:
            return mirror.fetch(root, stored, ref["meta"]["fingerprint"])
    return load_prepared(ref["path"])


def load_model_file(path: Path) -> dict:
    """``model.pt`` after two checks: its bytes match ``model.pt.sha256`` and it loads with
    ``weights_only=True`` (tensors and plain containers only); a file failing either is refused."""
    verify_digest(path, "run")
    blob = load_torch(path, "run")
    if not isinstance(blob, dict) or not {"family", "config", "modules", "data_shape"} <= set(blob):
        raise UserError(f"run: {path} is not a boltzgan model file (missing family/config/modules); re-create it")
    return blob
