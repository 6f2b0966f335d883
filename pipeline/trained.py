"""Loading a trained run for the downstream stages (sampling, evaluation, report)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import load_torch, verify_digest
from pipeline.config import RunConfig, validate_config
from pipeline.data import DataShape, PreparedData, load_prepared
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
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    path = run_dir.model_path
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
    data_path = run_dir.data_path()
    data = load_prepared(data_path) if data_path else None
    return TrainedModel(cfg, recipe, data, blob["epoch"], blob["step"], run_dir)


def load_model_file(path: Path) -> dict:
    """``model.pt`` after two checks: its bytes match ``model.pt.sha256`` and it loads with
    ``weights_only=True`` (tensors and plain containers only); a file failing either is refused."""
    verify_digest(path, "run")
    blob = load_torch(path, "run")
    if not isinstance(blob, dict) or not {"family", "config", "modules", "data_shape"} <= set(blob):
        raise UserError(f"run: {path} is not a boltzgan model file (missing family/config/modules); re-create it")
    return blob
