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
write goes through the few ``_read``/``_write`` methods below.

With ``output.storage`` set elsewhere than the output root (an ``s3://`` URI, a shared mount) the
run lives in ``<storage>/<run_name>/`` (beside Ray Train's checkpoints; prepared data under
``<storage>/data/<fingerprint>/``): every write goes through to it whole and reads come from it,
so the local directory is a cache that may be deleted at any time. Sampling tasks on other nodes
write their blocks straight to storage, never to a path of the driver's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import atomic
from pipeline.errors import UserError
from pipeline.storage import Store

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
    """Ray Train storage path: ``output.storage`` (options merged into its URI) or the absolute output root."""
    from pipeline.storage import storage_uri

    return storage_uri(cfg.output.storage, cfg.output.storage_options) if cfg.output.storage else str(output_root(cfg))


def run_store(cfg: RunConfig) -> Store | None:
    """The storage every file of the run is written through to; None when ``output.storage`` is
    unset or is the output root itself (then the run directory *is* the storage, as before)."""
    if not cfg.output.storage:
        return None
    store = Store.open(cfg.output.storage, cfg.output.storage_options)
    if store.is_local and Path(store.base) == output_root(cfg):
        return None
    return store


def stored_data_name(fingerprint: str) -> str:
    """Where prepared data of this fingerprint lives in storage (relative to ``output.storage``)."""
    return f"{DATA_SUBDIR}/{fingerprint}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:40]


# ------------------------------------------------------------------ a sample directory
@dataclass(frozen=True)
class SampleDir:
    """A sample written by the sampling stage: a manifest (written last), blocks, diagnostics.

    With a ``store`` the sample lives there: blocks are uploaded whole by whichever node ran them
    (nothing is written to ``path``, a directory of the driver's), and ``path`` is only the
    reading side's cache. Picklable, so sampling tasks receive it.
    """

    path: Path
    store: Store | None = None

    def block(self, index: int) -> Path:
        return self.path / self._block_name(index)

    @staticmethod
    def _block_name(index: int) -> str:
        return f"block-{index:05d}.npz"

    def blocks(self) -> list[Path]:
        """The blocks there are, as local paths (with a store: cache paths, fetched when read)."""
        if self.store is None:
            return sorted(self.path.glob(BLOCK_GLOB))
        prefix = BLOCK_GLOB.split("*")[0]
        return [self.path / n for n in self.store.names() if n.startswith(prefix) and n.endswith(".npz")]

    def has_block(self, index: int) -> bool:
        if self.store is not None:
            return self.store.exists(self._block_name(index))
        return self.block(index).exists()

    def _cached(self, name: str) -> Path:
        """The local copy of ``name`` (downloaded from the store when missing)."""
        local = self.path / name
        if self.store is not None and not local.exists():
            self.store.download(name, local)
        return local

    @property
    def manifest_path(self) -> Path:
        return self.path / SAMPLE_MANIFEST

    @property
    def diagnostics_path(self) -> Path:
        return self.path / SAMPLE_DIAGNOSTICS

    def is_complete(self) -> bool:
        """A sample without its manifest is partial (the manifest is written last)."""
        if self.store is not None:
            return self.store.exists(SAMPLE_MANIFEST)
        return self.manifest_path.exists()

    def write_block(self, index: int, **arrays: np.ndarray) -> str:
        """Write block ``index`` whole: to the store when there is one (then nothing local), else to ``path``."""
        import io

        import numpy as np

        if self.store is not None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            self.store.write_bytes(self._block_name(index), buf.getvalue())
            return f"{self.store}/{self._block_name(index)}"
        path = self.block(index)
        with atomic.atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays)
        return str(path)

    def read_block(self, index: int, *names: str) -> dict[str, np.ndarray]:
        """The named arrays of block ``index`` (copies: the file is closed afterwards)."""
        import numpy as np

        with np.load(self._cached(self._block_name(index))) as f:
            return {n: f[n].copy() for n in names}

    def _write_small(self, name: str, body: dict[str, Any]) -> None:
        atomic.write_json(self.path / name, body)
        if self.store is not None:
            self.store.upload(self.path / name, name)

    def _read_small(self, name: str) -> dict[str, Any] | None:
        if self.store is not None:
            return json.loads(self.store.read_bytes(name)) if self.store.exists(name) else None
        return atomic.read_json(self.path / name) if (self.path / name).exists() else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self._write_small(SAMPLE_MANIFEST, manifest)

    def read_manifest(self) -> dict[str, Any]:
        manifest = self._read_small(SAMPLE_MANIFEST)
        if manifest is None:
            raise UserError(f"sample: no complete sample in {self.store or self.path} (no {SAMPLE_MANIFEST}); "
                            f"run `boltzgan sample RUN_DIR` first")
        return manifest

    def write_diagnostics(self, diagnostics: dict[str, Any]) -> None:
        self._write_small(SAMPLE_DIAGNOSTICS, diagnostics)

    def read_diagnostics(self) -> dict[str, Any]:
        return self._read_small(SAMPLE_DIAGNOSTICS) or {}

    def clear(self) -> None:
        """Remove an earlier sample: the manifest first, so a crash mid-run never looks complete."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.store is not None:
            for name in (SAMPLE_MANIFEST, SAMPLE_DIAGNOSTICS):
                self.store.delete(name)
            for name in self.store.names():
                if name.startswith(BLOCK_GLOB.split("*")[0]):
                    self.store.delete(name)
        for path in (self.manifest_path, self.diagnostics_path):
            path.unlink(missing_ok=True)
        for stale in sorted(self.path.glob(BLOCK_GLOB)):
            stale.unlink()
        self.clear_partial()

    def clear_partial(self) -> None:
        """Temporary files of writers that died while writing."""
        for tmp in self.path.glob(".block-*.tmp"):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------ the run directory
@dataclass(frozen=True)
class RunDir:
    """One run's directory. Construct with :meth:`of` (from a config), :meth:`at` (a local
    directory or the run's storage URI) or ``RunDir(Path(...))``.

    ``store`` is the run's folder in ``output.storage`` (None: the local directory is all there
    is). A ``RunDir(path)`` finds it from the local ``config.yaml``.
    """

    path: Path
    store: Store | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())
        if self.store is None:
            object.__setattr__(self, "store", self._store_from_local_config())

    def _store_from_local_config(self) -> Store | None:
        config = self.path / CONFIG
        if not config.is_file():
            return None
        import yaml

        try:
            output = (yaml.safe_load(config.read_text()) or {}).get("output") or {}
            storage, options = output.get("storage"), output.get("storage_options") or {}
        except (yaml.YAMLError, AttributeError, OSError):
            return None  # read_config reports a broken file properly
        if not isinstance(storage, str) or not storage or not isinstance(options, dict):
            return None
        store = Store.open(storage, options)
        if store.is_local and Path(store.base) == self.path.parent:
            return None
        return store.child(self.path.name)

    @classmethod
    def at(cls, where: str | Path | RunDir) -> RunDir:
        """A run from a local directory, or from its folder in storage (``s3://bucket/prefix/RUN``,
        options in the URI query), whose local cache is then ``<output.root>/<run name>``."""
        if isinstance(where, RunDir):
            return where
        text = str(where)
        if "://" not in text:
            return cls(Path(text))
        from pipeline import strict_yaml
        from pipeline.config import validate_config

        store = Store.open(text, setting="run")
        if not store.exists(CONFIG):
            raise UserError(f"run: {text} holds no {CONFIG}; pass the storage folder of a run "
                            f"(<output.storage>/<run name>)")
        raw = strict_yaml.load_mapping(store.read_bytes(CONFIG).decode(), f"{text}/{CONFIG}")
        return cls(cls.of(validate_config(raw)).path, store)  # the store as addressed (its endpoint)

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
        store = run_store(cfg)
        return cls(root / cfg.run_name, store.child(cfg.run_name) if store is not None else None)

    @property
    def name(self) -> str:
        return self.path.name

    def __str__(self) -> str:
        return str(self.path)

    # -------------------------------------------------------------- the only file I/O
    def _file(self, rel: str) -> Path:
        return self.path / rel

    def _exists(self, rel: str) -> bool:
        if self.store is not None:
            return self.store.exists(rel)
        return self._file(rel).exists()

    def _read_text(self, rel: str) -> str:
        if self.store is not None:  # the store is the truth; the local file only a cache
            return self.store.read_bytes(rel).decode()
        return self._file(rel).read_text()

    def _write_text(self, rel: str, text: str) -> Path:
        path = atomic.write_text(self._file(rel), text)
        self._push(rel)
        return path

    def _read_json(self, rel: str) -> Any:
        return json.loads(self._read_text(rel))

    def _write_json(self, rel: str, obj: Any) -> Path:
        path = atomic.write_json(self._file(rel), obj)
        self._push(rel)
        return path

    def _push(self, rel: str) -> None:
        """Upload the local file ``rel`` whole to the store (no-op without one)."""
        if self.store is not None:
            self.store.upload(self._file(rel), rel)

    def _fetch(self, rel: str) -> Path:
        """The local copy of ``rel``, downloaded from the store when the cache lacks it."""
        local = self._file(rel)
        if self.store is not None and not local.exists() and self.store.exists(rel):
            self.store.download(rel, local)
        return local

    def _remove(self, rel: str) -> None:
        self._file(rel).unlink(missing_ok=True)
        if self.store is not None:
            self.store.delete(rel)

    def publish(self, path: Path) -> None:
        """Upload a file a stage wrote inside the run directory (a figure, a density grid)."""
        self._push(Path(path).resolve().relative_to(self.path).as_posix())

    def fetch(self, path: Path) -> Path:
        """``path`` (inside the run directory), fetched from storage when only the store has it."""
        return self._fetch(Path(path).resolve().relative_to(self.path).as_posix())

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

    def write_data_ref(self, path: str, meta: dict[str, Any], stored: str | None = None) -> None:
        """Record the prepared data: its local path and, with storage, its folder there (``stored``)."""
        self._write_json(DATA_REF, {"path": path, "meta": meta, **({"stored": stored} if stored else {})})

    def data_ref(self) -> dict[str, Any] | None:
        """``{"path", "meta"[, "stored"]}`` of the prepared data (None when not recorded)."""
        return self._read_json(DATA_REF) if self._exists(DATA_REF) else None

    def data_path(self) -> str | None:
        """The prepared-data directory the run was trained on (None when not recorded)."""
        ref = self.data_ref()
        return ref["path"] if ref else None

    # -------------------------------------------------------------- training outputs
    def append_epoch(self, record: dict[str, Any]) -> None:
        """Append locally, then upload the whole log (object stores have no append)."""
        self._fetch(METRICS_LOG)  # a driver whose cache was cleared continues the stored log
        atomic.append_jsonl(self._file(METRICS_LOG), record)
        self._push(METRICS_LOG)

    def epochs(self) -> list[dict[str, Any]]:
        """Every complete line of the per-epoch metrics log."""
        return atomic.read_jsonl(self._fetch(METRICS_LOG))

    def archive_epochs(self) -> Path:
        """Move the metrics log aside (``metrics.jsonl.old``) for a run that starts over."""
        log = self._fetch(METRICS_LOG)
        old = log.replace(log.with_name(METRICS_LOG + ".old"))
        self._push(METRICS_LOG + ".old")
        self._remove(METRICS_LOG)
        return old

    def release_claim(self) -> None:
        """Remove what claiming the directory wrote (a new run that failed before its first checkpoint)."""
        for rel in (CONFIG, DATA_REF, METRICS_LOG, STATE):
            self._remove(rel)

    def write_state(self, state: dict[str, Any]) -> None:
        self._write_json(STATE, state)

    def read_state(self) -> dict[str, Any] | None:
        return self._read_json(STATE) if self._exists(STATE) else None

    @property
    def model_path(self) -> Path:
        return self._file(MODEL_FILE)

    def has_model(self) -> bool:
        return self._exists(MODEL_FILE)

    def model_digest(self) -> str:
        """The exported model's sha256 as recorded beside it ('' before there is a model)."""
        rel = MODEL_FILE + atomic.DIGEST_SUFFIX
        return self._read_text(rel).split()[0] if self._exists(rel) else ""

    def local_model(self) -> Path:
        """``model.pt`` and its digest on this machine (fetched from storage when the cache lacks them)."""
        self._fetch(MODEL_FILE + atomic.DIGEST_SUFFIX)
        return self._fetch(MODEL_FILE)

    def install_model(self, exported: Path) -> Path:
        """Copy a checkpoint's exported model into the run directory (atomically) with its digest,
        and upload both (the digest last: a model without one is refused when loaded)."""
        with atomic.atomic_path(self.model_path) as tmp:
            tmp.write_bytes(Path(exported).read_bytes())
        atomic.write_digest(self.model_path)
        self._push(MODEL_FILE)
        self._push(MODEL_FILE + atomic.DIGEST_SUFFIX)
        return self.model_path

    # -------------------------------------------------------------- samples, evaluation, report
    @property
    def samples(self) -> SampleDir:
        return SampleDir(self._file(SAMPLES), self.store.child(SAMPLES) if self.store is not None else None)

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
