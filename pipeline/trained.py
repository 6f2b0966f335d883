"""Loading a trained run for the downstream stages (sampling, evaluation, report)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.artifacts import load_torch, verify_digest
from pipeline.checkpoints import MODEL_FILE
from pipeline.config import RunConfig, validate_config
from pipeline.data import PreparedData, load_prepared
from pipeline.errors import UserError
from pipeline.recipes.base import DataShape, Recipe, recipe_class


@dataclass
class TrainedModel:
    cfg: RunConfig
    recipe: Recipe
    data: PreparedData
    epoch: int
    step: int


def load_trained(run_dir: str | Path) -> TrainedModel:
    """Rebuild the recipe on the CPU from ``model.pt`` (modules in eval mode, training state restored)."""
    run_dir = Path(run_dir)
    path = run_dir / MODEL_FILE
    if not path.exists():
        raise UserError(f"run: {run_dir} has no {MODEL_FILE}; train it first (boltzgan train PRESET) "
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
    data_ref = run_dir / "data.json"
    data = load_prepared(_data_path(data_ref)) if data_ref.exists() else None
    return TrainedModel(cfg, recipe, data, blob["epoch"], blob["step"])


def load_model_file(path: Path) -> dict:
    """``model.pt`` after two checks: its bytes match ``model.pt.sha256`` and it loads with
    ``weights_only=True`` (tensors and plain containers only); a file failing either is refused."""
    verify_digest(path, "run")
    blob = load_torch(path, "run")
    if not isinstance(blob, dict) or not {"family", "config", "modules", "data_shape"} <= set(blob):
        raise UserError(f"run: {path} is not a boltzgan model file (missing family/config/modules); re-create it")
    return blob


def _data_path(ref: Path) -> str:
    import json

    return json.loads(ref.read_text())["path"]
