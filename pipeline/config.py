"""Typed run configuration: one ``RunConfig``, YAML presets shipped in the package, ``--set`` overrides.

Sections follow the five stages (data, model, train, sample, evaluate) plus ``resources`` and
``output``: scaling a run from a laptop to a cluster changes only ``resources`` and ``output``.
The ``model`` section is family specific: each recipe registers a ``ModelConfig`` subclass with
:func:`register_model_config`, and validation dispatches on ``model.family``; the JSON schema (the
Prefect UI's form) is a union over the registered families discriminated by ``family``.
Unknown keys and wrong types raise :class:`ConfigError` naming the key, the value and the nearest
valid name. Names that registries define (samplers of the family, metrics, feature extractors, AIS
schedules) are checked here too, so nothing that can be checked before training fails after it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, TypeAdapter, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from pydantic_core import PydanticCustomError

from pipeline import strict_yaml
from pipeline.errors import ConfigError
from pipeline.values import (check_ray_address, check_run_name, check_storage, check_value, check_worker_range,
                             shown)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="after")
    @classmethod
    def _sane_value(cls, value: Any, info: ValidationInfo) -> Any:
        """Finite floats, bounded integers and seeds, non-empty printable text (pipeline.values)."""
        return check_value(info.field_name, value)


class DataConfig(Section):
    """Where the data comes from and how it is turned into model-ready tensors."""

    source: str = Field("digits", description="digits | idx:DIR | hf:NAME[:CONFIG] | imagefolder:DIR | "
                        "parquet:PATH | disk:PATH | toy:ring8 | toy:grid25")
    scale: Literal["symmetric", "unit"] = Field(
        "symmetric", description="pixel range: symmetric = [-1, 1] (GANs, EBMs), unit = [0, 1]")
    binarize: Literal["none", "threshold", "stochastic"] = Field(
        "none", description="binarise to {0,1} for Bernoulli models (implies unit scale)")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="threshold for binarize=threshold")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="test split size when the source has none")
    seed: int = Field(0, description="seed of the split, stochastic binarisation and toy data")
    image_size: int | None = Field(None, gt=0, description="resize images to this square size")
    resize: Literal["refuse", "bilinear", "nearest"] = Field(
        "refuse", description="what to do with images whose size differs from image_size/the first image")
    channels: Literal["keep", "gray", "rgb"] = "keep"
    limit: int | None = Field(None, gt=0, description="keep only the first N training examples (quick runs)")
    toy_samples: int = Field(10_000, gt=0, description="number of points for toy: sources")
    bad_images: Literal["refuse", "skip"] = Field(
        "refuse", description="an image file that cannot be decoded: refuse = stop naming it, skip = leave it out")
    dir: str | None = Field(None, description="prepared-data directory (default: <output.root>/data/<key>)")


class ModelConfig(Section):
    """Base of the family-specific model sections. ``family`` selects the recipe."""

    family: str = "rbm"
    registry: ClassVar[dict[str, type[ModelConfig]]] = {}

    def check_sample(self, sample: SampleConfig) -> str | None:
        """Why this family cannot honour ``sample`` (one line naming key, value and fix), or None.
        Families whose chains start one way only refuse ``sample.init``."""
        if sample.init is not None:
            return (f"sample.init={sample.init!r}: model.family={self.family} starts its chains one way only; "
                    f"remove sample.init (it applies to deep EBMs: buffer | noise | data)")
        return None


def family_of(cls: type[ModelConfig]) -> str:
    """The family a model section declares in its ``family: Literal["name"]`` field (the one place
    a family's name is spelled)."""
    names = get_args(cls.model_fields["family"].annotation)
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{cls.__name__}.family must be declared as family: Literal['<name>'] = '<name>'")
    return names[0]


def register_model_config(cls: type[ModelConfig]) -> type[ModelConfig]:
    """Class decorator: make ``cls`` the model section of the family its ``family`` field names."""
    ModelConfig.registry[family_of(cls)] = cls
    return cls


class _FamilyUnionSchema:
    """JSON schema of ``model``: a union of the registered families' sections, discriminated by
    ``family``. Built from the registry whenever a schema is generated, so a family registered
    after this module (a plug-in, a test) appears in it; validation dispatches the same way."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        _load_families()
        families = tuple(ModelConfig.registry[f] for f in sorted(ModelConfig.registry))
        union = families[0] if len(families) == 1 else Annotated[Union[families], Field(discriminator="family")]
        return handler(TypeAdapter(union).core_schema)


class TrainConfig(Section):
    """What the engine owns: epochs, global batch, optimiser, precision, checkpoints."""

    epochs: int = Field(10, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimiser steps in total")
    batch_size: int = Field(100, gt=0, description="global batch size, split across workers")
    optimizer: Literal["sgd", "adam", "rmsprop"] = "sgd"
    lr: float = Field(0.01, gt=0)
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="the rate over the run's steps: constant, or decayed towards 0 by the last "
                                "step (linear, cosine); see pipeline/lr_schedule.py")
    momentum: float = Field(0.0, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm")
    grad_accum_steps: int = Field(1, gt=0)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on GPUs, fp32 on CPUs")
    seed: int = 0
    checkpoint_every: int = Field(1, gt=0, description="epochs between checkpoints")
    keep_checkpoints: int = Field(3, gt=0)
    checkpoint_upload: Literal["auto", "sync", "async"] = Field(
        "auto", description="Ray Train's checkpoint upload: auto = async for object storage (training goes on "
                            "while it uploads), sync for local paths")
    log_every: int = Field(50, gt=0, description="steps between progress reports")
    eval_examples: int = Field(1000, gt=0, description="examples used for per-epoch metrics")
    compile: bool = Field(False, description="torch.compile every module's forward (see README: Performance)")


class SampleConfig(Section):
    """The sampling stage: many chains in parallel across Ray workers."""

    chains: int = Field(200, gt=0)
    steps: int = Field(200, gt=0)
    burn_in: int = Field(50, ge=0)
    thin: int = Field(10, gt=0)
    workers: int = Field(1, ge=0, description="Ray workers; 0 runs the blocks in this process")
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0, description="fractions allowed, e.g. 0.25")
    chains_per_block: int = Field(50, gt=0, description="chains that share one seeded random stream")
    seed: int = 0
    sampler: str | None = Field(None, description="sampler name; default: the family's own")
    init: Literal["buffer", "noise", "data"] | None = Field(
        None, description="where EBM chains start: replay buffer, uniform noise or training data; "
        "default: as the run trained (its buffer when it had one)")
    diagnostics: bool = True

    @model_validator(mode="after")
    def _keeps_draws(self) -> SampleConfig:
        if self.burn_in >= self.steps:
            raise ValueError(f"sample.steps={self.steps} must exceed sample.burn_in={self.burn_in} so that draws "
                             f"are kept; raise sample.steps or lower sample.burn_in")
        if self.diagnostics and self.chains < 2:
            raise ValueError(f"sample.chains={self.chains}: R-hat needs at least 2 chains; use 2 or more, or "
                             f"set sample.diagnostics=false")
        return self


class EvaluateConfig(Section):
    """The evaluation stage: sample-quality metrics and likelihoods."""

    metrics: list[str] = Field(
        default_factory=lambda: ["fid", "kid", "is", "precision", "recall", "density", "coverage"],
        description="sample-quality metrics by name (fid, kid, is, precision, recall, density, coverage)")
    feature: list[str] = Field(
        default_factory=lambda: ["inception", "domain"],
        description="feature extractors, one tier each: inception (standard FID network) | domain (a CNN "
                    "trained on the data's labels) | torchscript:PATH; a single name or a list")
    num_samples: int = Field(1000, gt=1)
    inception_weights: str | None = Field(None, description="path of the FID Inception weights file")
    likelihood: Literal["auto", "exact", "ais", "none"] = "auto"
    ais_runs: int = Field(100, gt=1)
    ais_schedule: str = Field("salakhutdinov2008", description="salakhutdinov2008 | linear:N")
    workers: int = Field(1, gt=0)
    seed: int = 0

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        from pipeline.evaluation.metrics import METRICS

        for name in value:
            if name not in METRICS:
                raise ValueError(_unknown("evaluate.metrics", name, METRICS))
        return value

    @field_validator("feature", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("feature")
    @classmethod
    def _known_feature(cls, value: list[str]) -> list[str]:
        from pipeline.evaluation.extractors import feature_problem

        if not value:
            raise ValueError("evaluate.feature=[] names no extractor; use inception, domain or torchscript:PATH")
        for name in value:
            problem = feature_problem(name)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("ais_schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        from models.ais import schedule

        try:
            schedule(value)
        except ValueError as exc:
            raise ValueError(f"evaluate.ais_schedule={value!r}: {exc}") from None
        return value


class ResourcesConfig(Section):
    """What changes between a laptop and a cluster (with ``output.storage``)."""

    num_workers: int | str = Field(
        1, description="Ray Train workers: N, or MIN..MAX for elastic training (start with what the cluster "
                       "has, at least MIN, and grow to MAX as nodes join); 0 runs in-process (tests)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(1.0, ge=0)
    ray_address: str | None = Field(None, description="join this Ray cluster (else RAY_ADDRESS, else local)")
    max_failures: int = Field(2, ge=0, description="worker-group restarts allowed per run")
    data_in_memory_mb: float = Field(
        2048, ge=0, description="a training split up to this size is loaded once into one tensor on each "
                                "worker's device (GPU memory with use_gpu); larger ones are memory-mapped "
                                "and read ahead by a thread; 0 = always memory-mapped")
    yield_cores: bool = Field(
        True, description="a Ray worker with several CPU threads runs fewer while other processes share its "
                          "cores (measured by its threads' run-queue wait) and takes them back when they are "
                          "free: OpenMP's barriers make a shared core stall every thread (pipeline/cores.py)")

    elastic_resize_interval_s: float = Field(
        60.0, ge=0, description="elastic runs (num_workers=MIN..MAX): how often Ray Train looks for room to grow "
                                "the worker group (a resize restarts the group from the latest checkpoint)")

    _address = field_validator("ray_address")(lambda v: check_ray_address(v))
    _workers = field_validator("num_workers", mode="before")(lambda v: check_worker_range(v, "resources.num_workers"))

    @property
    def worker_range(self) -> tuple[int, int]:
        """(min, max) workers; equal for a fixed count."""
        n = self.num_workers
        if isinstance(n, int):
            return n, n
        low, high = n.split("..")
        return int(low), int(high)

    @property
    def elastic(self) -> bool:
        low, high = self.worker_range
        return low != high

    @property
    def in_process(self) -> bool:
        """num_workers=0: the train function runs in this process (Ray Train's local mode)."""
        return self.worker_range[1] == 0


class OutputConfig(Section):
    """Where results go. ``storage`` may be any URI Ray Train accepts (s3://...)."""

    root: str = "runs"
    run_name: str | None = Field(None, description="default: the preset name")
    storage: str | None = Field(
        None, description="where the run lives (prepared data, checkpoints, model, samples, evaluation, report): "
                          "a local path or a URI such as s3://bucket/prefix; the only thing nodes must share. "
                          "Default: <root> (absolute)")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="pyarrow filesystem options for output.storage, e.g. "
                                          "endpoint_override=HOST:PORT, scheme=http, region=us-east-1")

    _storage = field_validator("storage")(lambda v: check_storage(v))
    _run_name = field_validator("run_name")(lambda v: check_run_name(v, "output.run_name"))


class RunConfig(Section):
    """Everything one run needs, from data source to output location."""

    name: str = "custom"
    data: DataConfig = Field(default_factory=DataConfig)
    model: Annotated[SerializeAsAny[ModelConfig], _FamilyUnionSchema()] = Field(
        default_factory=lambda: _default_model(), description="the model family's section (model.family picks it)")
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    _name = field_validator("name")(lambda v: check_run_name(v, "name"))

    @field_validator("model", mode="before")
    @classmethod
    def _dispatch_family(cls, value: Any) -> Any:
        if isinstance(value, ModelConfig):
            value = value.model_dump()
        if not isinstance(value, dict):
            return value
        _load_families()
        family = value.get("family", "rbm")
        target = ModelConfig.registry.get(family)
        if target is None:
            raise ValueError(_unknown("model.family", family, ModelConfig.registry))
        return target.model_validate(value)

    @model_validator(mode="after")
    def _sampler_of_family(self) -> RunConfig:
        from pipeline.recipes.base import RECIPES

        recipe = RECIPES.get(self.model.family)
        if recipe is None:
            raise ValueError(f"model.family={self.model.family!r} has a config section but no recipe; register "
                             f"one with @register_recipe")
        problem = recipe.sampler_problem(self.sample.sampler) or self.model.check_sample(self.sample)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def run_name(self) -> str:
        return self.output.run_name or self.name

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the given sections (all when none), for caching and run identity."""
        dump = self.model_dump(mode="json")
        picked = {s: dump[s] for s in sections} if sections else dump
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _default_model() -> ModelConfig:
    _load_families()
    return ModelConfig.registry["rbm"]()


def _load_families() -> None:
    """Import the recipes so that their model sections are registered."""
    import pipeline.recipes  # noqa: F401  (registers ModelConfig subclasses)


def _unknown(key: str, value: Any, choices: Any) -> str:
    names = sorted(choices)
    near = difflib.get_close_matches(str(value)[:MAX_KEY], names, n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"valid: {', '.join(names)}"
    return f"{key} = {shown(value)} is not known; {hint}"


# --------------------------------------------------------------------------- presets and overrides

PRESET_PACKAGE = "pipeline.presets"


def list_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the YAML's ``description`` key)."""
    return {name: _preset_raw(name).get("description", "") for name in _preset_names()}


@functools.lru_cache(maxsize=None)
def _preset_names() -> tuple[str, ...]:
    return tuple(sorted(e.name[:-5] for e in resources.files(PRESET_PACKAGE).iterdir() if e.name.endswith(".yaml")))


@functools.lru_cache(maxsize=None)
def _preset_raw(name: str) -> dict[str, Any]:
    """A shipped preset, parsed once per process (package files do not change under a run)."""
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()
    return strict_yaml.load_mapping(text, f"preset {name}")


def preset_dict(name: str) -> dict[str, Any]:
    """The raw dictionary of a preset (without its ``description``)."""
    if name not in _preset_names():
        raise ConfigError(_unknown("preset", name, _preset_names()) + " (list them with `boltzgan presets`)")
    raw = json.loads(json.dumps(_preset_raw(name)))
    raw.pop("description", None)
    raw.setdefault("name", name)
    return raw


def parse_override(item: str, text_field: bool = False) -> tuple[list[str], Any]:
    """``'train.epochs=3'`` -> (['train', 'epochs'], 3). Values are parsed as YAML 1.2 scalars/lists
    (``010`` is 10, ``1:30`` text; see :mod:`pipeline.strict_yaml`); for a text field
    (``text_field``) the value is the text as typed, so ``name=2024`` is the name "2024"."""
    if "=" not in item:
        raise ConfigError(f"--set {shown(item)} is not of the form section.key=value (e.g. train.epochs=3)")
    key, raw = item.split("=", 1)
    path = [p.strip() for p in key.strip().split(".") if p.strip()]
    if not path:
        raise ConfigError(f"--set {shown(item)} has an empty key; use section.key=value")
    if text_field and raw.strip() not in ("null", "~"):
        return path, raw.strip(" ")  # spaces from shell quoting; newlines and controls stay (and fail)
    try:
        value = strict_yaml.loads(raw, f"--set {shown(key)}") if raw.strip() else ""
    except ConfigError:
        value = raw
    return path, value


def _text_field(path: list[str], raw: dict[str, Any]) -> bool:
    """Whether ``path`` names a field whose type is text (str, optional str or a Literal of str)."""
    import typing

    model: type[BaseModel] = RunConfig
    for i, part in enumerate(path):
        if model is RunConfig and part == "model":
            _load_families()
            section = raw.get("model")
            family = section.get("family", "rbm") if isinstance(section, dict) else "rbm"
            model = ModelConfig.registry.get(family, ModelConfig)
            if i == len(path) - 1:
                return False
            continue
        field = model.model_fields.get(part)
        if field is None:
            return False
        ann = field.annotation
        if i == len(path) - 1:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if typing.get_origin(ann) is typing.Literal:
                return all(isinstance(a, str) for a in args)
            return ann is str or (bool(args) and all(a is str for a in args) and typing.get_origin(ann) is not list)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return False
        model = ann
    return False


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with every ``section.key=value`` applied."""
    out = json.loads(json.dumps(raw))
    for item in overrides:
        path, _ = parse_override(item)
        path, value = parse_override(item, text_field=_text_field(path, out))
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return out


def load_config(preset: str | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> RunConfig:
    """Build a validated RunConfig from a preset (or ``base``) plus ``--set`` overrides."""
    raw = preset_dict(preset) if preset else dict(base or {})
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw)


def _refuse_bools_as_numbers(raw: dict[str, Any]) -> None:
    """Pydantic would read ``true`` as 1 for a number field; a typed ``true`` means a switch."""
    if not isinstance(raw, dict):
        return
    for name, section in raw.items():
        field = RunConfig.model_fields.get(name)
        if field is None or not isinstance(section, dict):
            continue
        model = field.annotation
        if name == "model":
            _load_families()
            model = ModelConfig.registry.get(section.get("family", "rbm"), ModelConfig)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, value in section.items():
            sub = model.model_fields.get(key)
            if isinstance(value, bool) and sub is not None and bool not in (sub.annotation, *get_args(sub.annotation)):
                raise ConfigError(f"config: {name}.{key} = {value} is invalid: it is true/false, but this setting "
                                  f"is not a switch")


def validate_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw dict, turning pydantic's report into one readable ConfigError."""
    _refuse_bools_as_numbers(raw)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, raw)) from None


def load_config_file(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a RunConfig saved as YAML (a run directory's ``config.yaml``)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            blob = f.read(strict_yaml.MAX_BYTES + 1)
        text = blob.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config: {path} does not exist; pass the directory of a run (it holds {path.name})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {path} cannot be read as UTF-8 text ({type(exc).__name__}); "
                          f"is it a {path.name} written by boltzgan?") from None
    raw = strict_yaml.load_mapping(text, str(path))
    return validate_config(apply_overrides(raw, overrides or []))


def describe_validation_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    """One line per problem: the dotted key, the bad value, and the fix (nearest valid name)."""
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_PROBLEMS]:
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        key = ".".join(loc)[:MAX_KEY] or "config"
        value = shown(err.get("input"))
        if err["type"] == "extra_forbidden":
            lines.append(f"config: unknown key '{key}' (value {value}); {_nearest_field(loc, raw)}")
        elif err["type"] == "value_error":
            lines.append(f"config: {err['msg'].removeprefix('Value error, ')[:300]}")
        else:
            lines.append(f"config: {key} = {value} is invalid: {err['msg'][:200]}")
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"config: … and {len(errors) - MAX_PROBLEMS} more problem(s)")
    return "\n".join(lines)


MAX_PROBLEMS = 8
MAX_KEY = 80


def _nearest_field(loc: list[str], raw: dict[str, Any]) -> str:
    """Suggest the valid key nearest to the unknown last element of ``loc``."""
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None:
            break
        ann = field.annotation
        if part == "model":
            family = (raw.get("model") or {}).get("family", "rbm")
            ann = ModelConfig.registry.get(family, ModelConfig)
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else model
    names = list(model.model_fields)
    near = difflib.get_close_matches(loc[-1][:MAX_KEY], names, n=1, cutoff=0.5)
    prefix = ".".join(loc[:-1])
    if near:
        return f"did you mean '{prefix + '.' if prefix else ''}{near[0]}'?"
    return f"valid keys here: {', '.join(names)}"
