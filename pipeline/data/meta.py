"""What a prepared directory is: ``meta.json`` (:class:`DataMeta`) next to ``dataset/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pipeline.errors import DataError

META = "meta.json"
DATASET = "dataset"


class DataMeta(BaseModel):
    """The contract of a prepared dataset (``meta.json``); see docs/design.md."""

    source: str
    fingerprint: str  # hash of the output-affecting DataConfig fields and of the source
    shape: tuple[int, ...]  # (C, H, W) for images, (2,) for toys
    value_range: tuple[float, float]
    binarize: str
    threshold: float | None = None
    binarize_seed: int | None = None
    n_train: int
    n_test: int
    num_classes: int | None = None
    class_names: list[str] | None = None
    split: str  # "source", or "random test_fraction=0.2 seed=0"
    resize: str | None = None  # the resize rule applied, if any
    seconds: float = 0.0  # time the preparation took


@dataclass(frozen=True)
class DataShape:
    """What a recipe needs to know of the prepared data to size its networks (saved in model.pt)."""

    shape: tuple[int, ...]
    value_range: tuple[float, float]
    binary: bool
    num_classes: int | None = None

    @property
    def dim(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class PreparedData:
    path: str
    meta: DataMeta
    cached: bool = False

    def data_shape(self) -> DataShape:
        """What a recipe needs to size its networks."""
        m = self.meta
        return DataShape(shape=tuple(m.shape), value_range=tuple(m.value_range), binary=m.binarize != "none",
                         num_classes=m.num_classes)


def is_prepared(path: Path) -> bool:
    return (path / META).is_file()


def load_prepared(path: str | Path) -> PreparedData:
    """The prepared dataset in ``path``; a DataError when ``path`` is not one (or is damaged)."""
    path = Path(path).expanduser()
    if not is_prepared(path):
        raise DataError(f"data: {path} is not a prepared dataset (no {META}); create one with "
                        f"`boltzgan data prepare SOURCE --out {path}`")
    try:
        meta = DataMeta.model_validate_json((path / META).read_text())
    except (OSError, ValidationError) as exc:
        raise DataError(f"data: {path / META} is unreadable or not boltzgan metadata ({type(exc).__name__}); "
                        f"delete {path} and prepare it again") from None
    if not (path / DATASET / "dataset_dict.json").is_file():
        raise DataError(f"data: {path} has {META} but its {DATASET}/ directory is missing or incomplete; "
                        f"delete {path} and prepare it again")
    return PreparedData(str(path.resolve()), meta)
