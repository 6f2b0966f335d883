"""The run directory: the one owner of every file a run writes, and of the directories derived from
``output.root`` (prepared data, caches, Ray Train storage).

Layout of ``<output.root>/<run_name>/`` (see docs/design.md)::

    config.yaml          resolved RunConfig (written before training starts)
    data.json            {"path": prepared dir, "meta": DataMeta}
    metrics.jsonl        one JSON line per epoch (written by the driver)
    state.json           {"epoch", "step", "checkpoint", "metrics"} of the exported model
    model.pt             exported model (what the downstream stages load)
    checkpoint_*/        Ray Train checkpoints (``pipeline.checkpoints``)
    samples/             manifest.json, block-NNNNN.npz, diagnostics.json (the sampling stage)
    eval/metrics.json    the evaluation's results
    report/              report.md, its PNG figures, inputs.json (what it was built from)

No other module spells these names: stages ask a :class:`RunDir` (or a :class:`SampleDir` for a
sample written outside a run) for a path or, preferably, to read or write a file. Every read and
write goes through the few ``_read``/``_write`` methods below so that another backend (object
storage for ``output.storage`` URIs) can later be put behind them without touching the stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import atomic
from pipeline.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from pipeline.config import RunConfig

CONFIG = "config.yaml"
DATA_REF = "data.json"
METRICS_LOG = "metrics.jsonl"
STATE = "state.json"
MODEL_FILE = "model.pt"  # also the model file inside every checkpoint directory
SAMPLES = "samples"
EVAL_METRICS = "eval/metrics.json"
REPORT = "report"
REPORT_MARKDOWN = "report.md"
REPORT_KEY = "inputs.json"
SAMPLE_MANIFEST = "manifest.json"
SAMPLE_DIAGNOSTICS = "diagnostics.json"
BLOCK_GLOB = "block-*.npz"
DATA_SUBDIR = "data"
CACHE_SUBDIR = "cache"


# ------------------------------------------------------------------ directories derived from output.root
def output_root(cfg: RunConfig) -> Path:
    """The absolute local output root (``output.root``)."""
    return Path(cfg.output.root).expanduser().resolve()


def data_dir(cfg: RunConfig) -> Path:
    """Where a run's prepared data lives: ``data.dir``, else ``<root>/data/<source>-<hash of data>``."""
    if cfg.data.dir:
        return Path(cfg.data.dir).expanduser()
    return output_root(cfg) / DATA_SUBDIR / f"{_slug(cfg.data.source)}-{cfg.fingerprint('data')}"


def cache_dir(cfg: RunConfig) -> Path:
    """Shared caches of all runs under the root (real-image features, the domain classifier)."""
    return output_root(cfg) / CACHE_SUBDIR


def storage_of(cfg: RunConfig) -> str:
    """Ray Train storage path: ``output.storage`` or the absolute output root."""
    return cfg.output.storage or str(output_root(cfg))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:40]


# ------------------------------------------------------------------ a sample directory
@dataclass(frozen=True)
class SampleDir:
    """A sample written by the sampling stage: a manifest (written last), blocks, diagnostics."""

    path: Path

    def block(self, index: int) -> Path:
        return self.path / f"block-{index:05d}.npz"

    def blocks(self) -> list[Path]:
        return sorted(self.path.glob(BLOCK_GLOB))

    @property
    def manifest_path(self) -> Path:
        return self.path / SAMPLE_MANIFEST

    @property
    def diagnostics_path(self) -> Path:
        return self.path / SAMPLE_DIAGNOSTICS

    def is_complete(self) -> bool:
        """A sample without its manifest is partial (the manifest is written last)."""
        return self.manifest_path.exists()

    def write_block(self, index: int, **arrays: np.ndarray) -> Path:
        import numpy as np

        path = self.block(index)
        with atomic.atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays)
        return path

    def read_block(self, index: int, *names: str) -> dict[str, np.ndarray]:
        """The named arrays of block ``index`` (copies: the file is closed afterwards)."""
        import numpy as np

        with np.load(self.block(index)) as f:
            return {n: f[n].copy() for n in names}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic.write_json(self.manifest_path, manifest)

    def read_manifest(self) -> dict[str, Any]:
        if not self.is_complete():
            raise UserError(f"sample: no complete sample in {self.path} (no {SAMPLE_MANIFEST}); "
                            f"run `boltzgan sample RUN_DIR` first")
        return atomic.read_json(self.manifest_path)

    def write_diagnostics(self, diagnostics: dict[str, Any]) -> None:
        atomic.write_json(self.diagnostics_path, diagnostics)

    def read_diagnostics(self) -> dict[str, Any]:
        return atomic.read_json(self.diagnostics_path) if self.diagnostics_path.exists() else {}

    def clear(self) -> None:
        """Remove an earlier sample: the manifest first, so a crash mid-run never looks complete."""
        self.path.mkdir(parents=True, exist_ok=True)
        for path in (self.manifest_path, self.diagnostics_path):
            path.unlink(missing_ok=True)
        for stale in self.blocks():
            stale.unlink()
        self.clear_partial()

    def clear_partial(self) -> None:
        """Temporary files of writers that died while writing."""
        for tmp in self.path.glob(".block-*.tmp"):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------ the run directory
@dataclass(frozen=True)
class RunDir:
    """One run's directory. Construct with :meth:`of` (from a config) or ``RunDir(Path(...))``."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())

    @classmethod
    def of(cls, cfg: RunConfig) -> RunDir:
        """``<output.root>/<run_name>``, checked to resolve inside the root (symbolic links followed)."""
        root = output_root(cfg)
        real = (root / cfg.run_name).resolve()
        if real != root and root not in real.parents:
            from pipeline.errors import ConfigError

            raise ConfigError(f"output: {root / cfg.run_name} leads to {real}, outside output.root={root}; every "
                              f"file of a run is written inside the root. Remove the link or choose another "
                              f"output.run_name.")
        return cls(root / cfg.run_name)

    @property
    def name(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return str(self.path)

    # -------------------------------------------------------------- the only file I/O
    def _file(self, rel: str) -> Path:
        return self.path / rel

    def _exists(self, rel: str) -> bool:
        return self._file(rel).exists()

    def _read_text(self, rel: str) -> str:
        return self._file(rel).read_text()

    def _write_text(self, rel: str, text: str) -> Path:
        return atomic.write_text(self._file(rel), text)

    def _read_json(self, rel: str) -> Any:
        return json.loads(self._read_text(rel))

    def _write_json(self, rel: str, obj: Any) -> Path:
        return atomic.write_json(self._file(rel), obj)

    # -------------------------------------------------------------- config and data reference
    def has_config(self) -> bool:
        return self._exists(CONFIG)

    def write_config(self, cfg: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_text(CONFIG, cfg.to_yaml())

    def read_config(self, overrides: list[str] | None = None) -> RunConfig:
        """The run's resolved config with ``section.key=value`` overrides applied."""
        import yaml

        from pipeline.config import apply_overrides, validate_config

        if not self.has_config():
            raise UserError(f"run: {self.path} has no {CONFIG}; pass the directory of a trained run "
                            f"(<output.root>/<run name>), e.g. runs/demo")
        from pipeline import strict_yaml

        raw = strict_yaml.load_mapping(self._read_text(CONFIG), str(self.path / CONFIG))
        return validate_config(apply_overrides(raw, overrides or []))

    def write_data_ref(self, path: str, meta: dict[str, Any]) -> None:
        self._write_json(DATA_REF, {"path": path, "meta": meta})

    def data_path(self) -> str | None:
        """The prepared-data directory the run was trained on (None when not recorded)."""
        return self._read_json(DATA_REF)["path"] if self._exists(DATA_REF) else None

    # -------------------------------------------------------------- training outputs
    def append_epoch(self, record: dict[str, Any]) -> None:
        atomic.append_jsonl(self._file(METRICS_LOG), record)

    def epochs(self) -> list[dict[str, Any]]:
        """Every complete line of the per-epoch metrics log."""
        return atomic.read_jsonl(self._file(METRICS_LOG))

    def archive_epochs(self) -> Path:
        """Move the metrics log aside (``metrics.jsonl.old``) for a run that starts over."""
        log = self._file(METRICS_LOG)
        return log.replace(log.with_name(METRICS_LOG + ".old"))

    def release_claim(self) -> None:
        """Remove what claiming the directory wrote (a new run that failed before its first checkpoint)."""
        for rel in (CONFIG, DATA_REF, METRICS_LOG, STATE):
            self._file(rel).unlink(missing_ok=True)

    def write_state(self, state: dict[str, Any]) -> None:
        self._write_json(STATE, state)

    def read_state(self) -> dict[str, Any] | None:
        return self._read_json(STATE) if self._exists(STATE) else None

    @property
    def model_path(self) -> Path:
        return self._file(MODEL_FILE)

    def has_model(self) -> bool:
        return self._exists(MODEL_FILE)

    def install_model(self, exported: Path) -> Path:
        """Copy a checkpoint's exported model into the run directory (atomically)."""
        with atomic.atomic_path(self.model_path) as tmp:
            tmp.write_bytes(Path(exported).read_bytes())
        return self.model_path

    # -------------------------------------------------------------- samples, evaluation, report
    @property
    def samples(self) -> SampleDir:
        return SampleDir(self._file(SAMPLES))

    @property
    def eval_path(self) -> Path:
        return self._file(EVAL_METRICS)

    def write_evaluation(self, body: dict[str, Any]) -> Path:
        return self._write_json(EVAL_METRICS, body)

    def read_evaluation(self) -> dict[str, Any] | None:
        return self._read_json(EVAL_METRICS) if self._exists(EVAL_METRICS) else None

    @property
    def report_dir(self) -> Path:
        return self._file(REPORT)

    def figure_path(self, name: str) -> Path:
        """``report/<name>.png``."""
        return self.report_dir / f"{name}.png"

    @property
    def report_path(self) -> Path:
        return self._file(f"{REPORT}/{REPORT_MARKDOWN}")

    def write_report(self, markdown: str, key: str = "", figures: dict[str, str] | None = None) -> Path:
        """``report/report.md``, then what it was built from (``inputs.json``: its key and figures)."""
        path = self._write_text(f"{REPORT}/{REPORT_MARKDOWN}", markdown)
        self._write_json(f"{REPORT}/{REPORT_KEY}", {"key": key, "figures": figures or {}})
        return path

    def read_report(self) -> tuple[str, str, dict[str, str]] | None:
        """(markdown, key, figures) of the stored report; None when it is absent or incomplete."""
        if not (self._exists(f"{REPORT}/{REPORT_MARKDOWN}") and self._exists(f"{REPORT}/{REPORT_KEY}")):
            return None
        inputs = self._read_json(f"{REPORT}/{REPORT_KEY}")
        figures = inputs.get("figures", {})
        if not all(Path(p).exists() for p in figures.values()):
            return None
        return self._read_text(f"{REPORT}/{REPORT_MARKDOWN}"), inputs.get("key", ""), figures
