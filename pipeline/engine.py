"""The distributed training engine: Ray Train's ``TorchTrainer`` outside, Accelerate inside.

The driver (:func:`train`) validates resources, starts or joins Ray, launches the worker group and
relays progress; each worker runs :func:`worker_loop`, which builds an ``Accelerator`` and drives
the family's recipe. Everything here is family agnostic: a new family never changes this file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import atomic as artifacts
from pipeline.checkpoints import latest_valid, list_checkpoints, persist_checkpoint, write_manifest
from pipeline.config import RunConfig, validate_config
from pipeline.cores import ThreadGovernor
from pipeline.data import PreparedData, load_prepared, mirror, open_split
from pipeline.errors import TrainingDiverged, UnsafeFileError, UserError
from pipeline.feed import Feed, open_feed
from pipeline.lr_schedule import apply_lr
from pipeline.meter import StepMeter
from pipeline.recipes.base import Batch, Recipe, recipe_class
from pipeline.rundir import METRICS_LOG, MODEL_FILE, RunDir, run_store, storage_of, stored_data_name
from pipeline.sharding import num_batches

log = logging.getLogger(__name__)

# Config sections a resumed run may change (the rest defines the model being trained).
RESUMABLE_CHANGES = {"train.epochs", "train.max_steps", "train.log_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.checkpoint_upload", "train.compile", "resources", "output",
                     "sample", "evaluate", "name"}


@dataclass
class TrainResult:
    """What the train stage hands to the next stages (paths and a few numbers)."""

    run_dir: str
    model_path: str
    checkpoint: str | None
    epochs: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    resumed: bool = False
    skipped: bool = False

    @classmethod
    def of_run(cls, run_dir: str | Path) -> TrainResult:
        """The result of a run trained earlier (from its run directory), for stages run on their own."""
        run = RunDir.at(run_dir)
        state = run.read_state()
        if state is None or not run.has_model():
            raise UserError(f"run: {run} holds no trained model; train it first (boltzgan train PRESET)")
        return cls(str(run), str(run.model_path), state.get("checkpoint"), state["epoch"], state["step"],
                   state.get("metrics", {}))


# ====================================================================================== driver

def train(cfg: RunConfig, data: PreparedData, resume: bool = False,
          progress: Callable[[dict[str, Any]], None] | None = None, restart: bool = False) -> TrainResult:
    """Train ``cfg`` on ``data``; with ``resume`` continue the run's latest valid checkpoint.

    A finished run asked to resume returns at once (``skipped``), which makes the stage idempotent
    for orchestrators that re-run a flow after a crash. A run directory is locked while it trains
    (a second process is refused) and claimed (config.yaml written) only once Ray is up and the
    resources fit, so a start that fails leaves nothing that blocks the corrected command.
    ``restart`` allows a resumed run without any valid checkpoint to start again at epoch 1.
    """
    from pipeline.locks import hold

    with hold(RunDir.of(cfg).path, "train"):
        return _train_locked(cfg, data, resume, progress, restart)


def _train_locked(cfg: RunConfig, data: PreparedData, resume: bool,
                  progress: Callable[[dict[str, Any]], None] | None, restart: bool) -> TrainResult:
    run_dir = RunDir.of(cfg)
    resumed = _check_run_dir(cfg, resume)
    state = run_dir.read_state()
    if resumed and state and state.get("epoch", 0) >= cfg.train.epochs and run_dir.has_model():
        return TrainResult(str(run_dir), str(run_dir.model_path), state.get("checkpoint"),
                           state["epoch"], state["step"], state.get("metrics", {}), True, True)
    from_checkpoint = _resume_point(cfg, resumed, restart)

    from pipeline.ray_utils import check_resources, ensure_ray

    ensure_ray(cfg.resources.ray_address)
    res = cfg.resources
    if not res.in_process:  # an elastic run needs room for its minimum now; it grows later
        check_resources(res.worker_range[0], res.cpus_per_worker, res.gpus_per_worker if res.use_gpu else 0.0,
                        "resources.num_workers")
    _claim_run_dir(cfg, data, resumed)
    try:
        return _run_trainer(cfg, data, from_checkpoint, progress)
    except BaseException:
        if not resumed:
            _release_unstarted(cfg)
        raise


def _run_trainer(cfg: RunConfig, data: PreparedData, from_checkpoint: bool,
                 progress: Callable[[dict[str, Any]], None] | None) -> TrainResult:
    from pipeline.ray_utils import stop_ray_work_on_interrupt

    run_dir = RunDir.of(cfg)
    board = _progress_board()
    trainer = _make_trainer(cfg, data, from_checkpoint, board)
    with stop_ray_work_on_interrupt():  # a cancelled flow run stops its workers now
        if cfg.resources.num_workers == 0:
            result, last = _fit_here(trainer, board, run_dir, progress)
        else:
            result, last = _fit_beside(trainer, board, run_dir, progress)
    last = _relay(board, run_dir, progress) or last
    if isinstance(result, BaseException):
        raise result
    diverged = last.get("diverged") or _board_flag(board, "diverged")
    if diverged:
        raise TrainingDiverged(diverged)
    return _finish(cfg, result)


def _fit_beside(trainer: Any, board: Any, run_dir: RunDir,
                progress: Callable[[dict[str, Any]], None] | None) -> tuple[Any, dict[str, Any]]:
    """Ray workers: ``fit`` waits for them in a thread while this thread relays their progress (and
    stays the one that receives Ctrl-C and Prefect's termination signal)."""
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=_fit(trainer)), daemon=True)
    thread.start()
    last: dict[str, Any] = {}
    while thread.is_alive():
        thread.join(timeout=0.5)
        last = _relay(board, run_dir, progress) or last
    return outcome.get("result"), last


def _fit_here(trainer: Any, board: Any, run_dir: RunDir,
              progress: Callable[[dict[str, Any]], None] | None) -> tuple[Any, dict[str, Any]]:
    """In-process (Ray Train's local mode runs the loop in the calling thread): train on this thread
    and relay progress from a helper thread. Training on a second thread would make it the process's
    second user of torch's OpenMP pool, and libgomp then throttles its workers' spinning because
    more threads are managed than there are cores: each parallel region waits for a futex wake-up
    (a 100×500 sigmoid takes 8 µs on the first thread and 70-80 µs on the second, measured here), and
    the RBM step ran at 0.55× the same step on the main thread."""
    stop = threading.Event()
    last: dict[str, Any] = {}
    failure: list[BaseException] = []

    def relay() -> None:
        try:
            while not stop.wait(0.5):
                last.update(_relay(board, run_dir, progress))
        except BaseException as exc:  # surfaced below, after training
            failure.append(exc)

    thread = threading.Thread(target=relay, name="boltzgan-progress", daemon=True)
    thread.start()
    try:
        result = trainer.fit()  # an interrupt raises here, inside stop_ray_work_on_interrupt
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]
    return result, last


def _fit(trainer: Any) -> Any:
    try:
        return trainer.fit()
    except BaseException as exc:  # surfaced in the driver's main thread
        return exc


def _make_trainer(cfg: RunConfig, data: PreparedData, resume: bool, board: Any) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig as RayRunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    res = cfg.resources
    per_worker = {"CPU": res.cpus_per_worker}
    if res.use_gpu:
        per_worker["GPU"] = res.gpus_per_worker
    low, high = res.worker_range
    scaling = ScalingConfig(num_workers=(low, high) if res.elastic else high, use_gpu=res.use_gpu,
                            resources_per_worker=per_worker,
                            elastic_resize_monitor_interval_s=res.elastic_resize_interval_s)
    run_config = RayRunConfig(
        name=cfg.run_name,
        **_ray_storage(cfg),
        failure_config=FailureConfig(max_failures=res.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
        **_quiet_train_logs(),
    )
    loop_config = {"cfg": cfg.model_dump(mode="json"), "data": _data_for_workers(cfg, data), "resume": resume,
                   "board": board, "storage": storage_of(cfg)}
    return TorchTrainer(worker_loop, train_loop_config=loop_config, scaling_config=scaling, run_config=run_config)


def _quiet_train_logs() -> dict[str, Any]:
    """Ray Train's INFO lines (requesting resources, starting the worker group, the process group's
    rendezvous) reach the console at every start, and the driver prints its own "worker i/n on node"
    lines: show Ray Train's warnings only (its log files keep every level). ``LoggingConfig`` is
    newer than some Ray releases ``ray[train]>=2.50`` admits; there the lines stay."""
    try:
        from ray.train import LoggingConfig
    except ImportError:
        return {}
    return {"logging_config": LoggingConfig(log_level="WARNING")}


def _ray_storage(cfg: RunConfig) -> dict[str, Any]:
    """Ray Train's storage: a local path as is; a URI as its pyarrow filesystem (with the options
    of ``output.storage_options``) and the path inside it."""
    storage = storage_of(cfg)
    if "://" not in storage:
        return {"storage_path": storage}
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(storage)
    return {"storage_path": path, "storage_filesystem": fs}


def checkpoint_upload_mode(storage: str, choice: str = "auto") -> Any:
    """``train.checkpoint_upload``: ``auto`` is Ray Train's asynchronous upload for object storage
    (the step loop goes on while the checkpoint uploads) and synchronous for local paths (a copy on
    the same disk); ``sync``/``async`` force one (benchmarks compare them)."""
    from ray.train import CheckpointUploadMode

    from pipeline.storage import is_object_store

    if choice == "auto":
        choice = "async" if is_object_store(storage) else "sync"
    return CheckpointUploadMode.ASYNC if choice == "async" else CheckpointUploadMode.SYNC


def _data_for_workers(cfg: RunConfig, data: PreparedData) -> dict[str, Any]:
    """Where workers find the prepared data: its folder in storage when the run has one (each
    node reads it through its own cache), else the local path (one machine or a shared mount)."""
    store = run_store(cfg)
    if store is None:
        return {"path": data.path}
    return {"path": None, "store": store, "name": stored_data_name(data.meta.fingerprint),
            "fingerprint": data.meta.fingerprint}


def open_worker_data(where: dict[str, Any]) -> PreparedData:
    """The prepared data on this worker's node (see :func:`_data_for_workers`)."""
    if where.get("store") is None:
        return load_prepared(where["path"])
    return mirror.fetch(where["store"], where["name"], where["fingerprint"])


def _check_run_dir(cfg: RunConfig, resume: bool) -> bool:
    """Refuse to overwrite another run; True when ``cfg`` resumes the run already there."""
    run_dir = RunDir.of(cfg)
    if not run_dir.has_config():
        return False
    if not resume:
        raise UserError(
            f"output: run directory {run_dir} already holds a run of '{cfg.run_name}'. Pass --resume to "
            f"continue it, or --set output.run_name=NEW (or output.root=DIR) to start another; "
            f"nothing was changed.")
    _check_compatible(run_dir.read_config(), cfg)
    return True


def _resume_point(cfg: RunConfig, resumed: bool, restart: bool) -> bool:
    """Whether the workers continue from a checkpoint. A resumed run whose epochs were logged but
    that has no valid checkpoint is refused unless ``restart`` (it would silently begin again)."""
    if not resumed:
        return False
    found = latest_valid(list_checkpoints(storage_of(cfg), cfg.run_name))
    if found is not None:
        if restart:
            raise UserError(f"--restart: {RunDir.of(cfg).path} has a valid checkpoint (epoch {found[1]['epoch']}); drop "
                            f"--restart to resume from it, or start a new run with --set output.run_name=NEW")
        refuse_pickles(found[0])
        return True
    logged = RunDir.of(cfg).epochs()
    if not logged:
        log.info("run %s has no checkpoint and no logged epoch yet: starting at epoch 1", cfg.run_name)
        return False
    if not restart:
        raise UserError(
            f"--resume: {RunDir.of(cfg).path} has no valid checkpoint (missing, corrupt or partial) although "
            f"{len(logged)} epoch(s) were logged; resuming would start again at epoch 1. Pass --restart to start "
            f"over (the old log is kept as {METRICS_LOG}.old), or put a valid checkpoint_* directory back.")
    RunDir.of(cfg).archive_epochs()
    return False


def _claim_run_dir(cfg: RunConfig, data: PreparedData, resumed: bool) -> None:
    """Write config.yaml (and data.json for a new run): from here on the directory holds this run."""
    run_dir = RunDir.of(cfg)
    run_dir.write_config(cfg)
    stored = None
    store = run_store(cfg)
    if store is not None:  # before any worker starts: the nodes read the data from storage only
        stored = stored_data_name(data.meta.fingerprint)
        mirror.publish(data, store, stored)
    if not resumed:
        run_dir.write_data_ref(data.path, data.meta.model_dump(mode="json"), stored)


def _release_unstarted(cfg: RunConfig) -> None:
    """Undo the claim of a new run that failed before its first checkpoint."""
    if list_checkpoints(storage_of(cfg), cfg.run_name):
        return
    RunDir.of(cfg).release_claim()
    with contextlib.suppress(OSError):
        RunDir.of(cfg).path.rmdir()  # only when nothing else is in it


def _check_compatible(old: RunConfig, new: RunConfig) -> None:
    """A resumed run may extend training, not change what is being trained."""
    diffs = [k for k in _flat_diff(old.model_dump(mode="json"), new.model_dump(mode="json"))
             if not any(k == c or k.startswith(c + ".") for c in RESUMABLE_CHANGES)]
    if diffs:
        raise UserError(
            f"--resume: the run in {RunDir.of(new)} was trained with different settings for "
            f"{', '.join(diffs)}; resume with the same values, or start a new run with "
            f"--set output.run_name=NEW.")


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _finish(cfg: RunConfig, result: Any) -> TrainResult:
    """Verify the final checkpoint and export its model.pt to the run directory."""
    if result is not None and getattr(result, "error", None):
        raise result.error
    found = latest_valid(list_checkpoints(storage_of(cfg), cfg.run_name))
    if found is None:
        raise UserError(f"train: no valid checkpoint was written under {storage_of(cfg)}/{cfg.run_name}")
    local, manifest = found
    run_dir = RunDir.of(cfg)
    run_dir.install_model(local / MODEL_FILE)  # with its digest, uploaded to storage when there is one
    metrics = manifest.get("metrics", {})
    run_dir.write_state({"epoch": manifest["epoch"], "step": manifest["step"], "checkpoint": str(local),
                         "metrics": metrics})
    return TrainResult(str(run_dir), str(run_dir.model_path), str(local), manifest["epoch"], manifest["step"],
                       metrics, resumed=False)


# ====================================================================================== progress

def _progress_board() -> Any:
    """A tiny Ray actor that workers push events to and the driver drains."""
    import ray

    @ray.remote(num_cpus=0)
    class ProgressBoard:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []
            self.flags: dict[str, Any] = {}

        def push(self, event: dict[str, Any]) -> None:
            self.events.append(event)
            if event.get("kind") == "diverged":
                self.flags["diverged"] = event["message"]

        def drain(self) -> list[dict[str, Any]]:
            out, self.events = self.events, []
            return out

        def flag(self, name: str) -> Any:
            return self.flags.get(name)

    return ProgressBoard.remote()


def _relay(board: Any, run_dir: RunDir, progress: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """Drain worker events: epochs go to metrics.jsonl, everything to the progress callback."""
    import ray

    last: dict[str, Any] = {}
    for event in ray.get(board.drain.remote()):
        if event.get("kind") == "epoch":
            run_dir.append_epoch(event["metrics"] | {"epoch": event["epoch"], "step": event["step"]})
        if event.get("kind") == "diverged":
            last["diverged"] = event["message"]
        if progress is not None:
            progress(event)
    return last


def _board_flag(board: Any, name: str) -> Any:
    import ray

    return ray.get(board.flag.remote(name))


# ====================================================================================== worker

@dataclass
class _Context:
    """Per-worker facts derived once at start-up."""

    cfg: RunConfig
    rank: int
    world: int
    n_train: int
    steps_per_epoch: int
    total_steps: int
    storage: str
    local: bool
    cores: ThreadGovernor | None = None  # a Ray worker's thread count under contention (pipeline/cores.py)


def worker_loop(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker (or in-process when num_workers=0)."""
    import ray
    import ray.train
    from accelerate.utils import set_seed

    _quiet_worker_logs()
    cfg = validate_config(config["cfg"])
    data = open_worker_data(config["data"])
    board = config["board"]
    recipe_cls = recipe_class(cfg.model.family)
    accelerator = make_accelerator(cfg, recipe_cls)
    _own_cores(cfg)  # after Accelerate, which sets its own count on multi-CPU runs without OMP_NUM_THREADS
    rank, world = accelerator.process_index, accelerator.num_processes
    if not cfg.resources.in_process:  # in-process runs log in the driver already
        from pipeline.ray_logs import forward_worker_warnings

        forward_worker_warnings(board, rank)
    board.push.remote({"kind": "worker", "rank": rank, "world": world, "device": str(accelerator.device),
                       "node": ray.get_runtime_context().get_node_id()})
    train_x, _ = open_split(data.path, "train")
    test_x, _ = open_split(data.path, "test")
    set_seed(cfg.train.seed)  # identical initialisation on every rank
    recipe = recipe_cls(cfg, data.data_shape())
    recipe.init_from_data(torch.from_numpy(np.array(train_x)))
    if cfg.train.compile:
        _compile(recipe)
    recipe.setup(accelerator)

    n = train_x.shape[0]
    # the trailing-batch rule uses the largest world the run may have, so that an elastic run takes
    # the same global batches (and steps) at every size (pipeline/sharding.py)
    batch_world = max(world, cfg.resources.worker_range[1])
    per_epoch = num_batches(n, cfg.train.batch_size, batch_world)
    total = per_epoch * cfg.train.epochs
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    ctx = _Context(cfg, rank, world, n, per_epoch, total, config["storage"], cfg.resources.in_process,
                   _governor(cfg))
    epoch, step = _restore(accelerator, recipe, cfg, config)
    feed = open_feed(train_x, cfg.train.batch_size, world, rank, cfg.train.seed, recipe.data.shape,
                     accelerator.device, cfg.resources.data_in_memory_mb, batch_world)
    eval_train = torch.from_numpy(np.array(train_x[: cfg.train.eval_examples]))
    eval_test = torch.from_numpy(np.array(test_x[: cfg.train.eval_examples]))
    restarts = 0
    while step < total:
        try:
            epoch_metrics, step = _run_epoch(recipe, accelerator, ctx, feed, epoch, step, board)
        except TrainingDiverged as exc:
            restarts += 1
            resumed = _recover(recipe, accelerator, cfg, config, rank, restarts, str(exc), board)
            if resumed is None:
                return  # reported to the driver, which raises; a raise here would make Ray retry
            epoch, step = resumed
            continue
        epoch += 1
        if rank == 0:
            with torch.no_grad():
                epoch_metrics |= {k: float(v) for k, v in recipe.epoch_metrics(
                    _to(eval_train, recipe, accelerator), _to(eval_test, recipe, accelerator)).items()}
        checkpointing = epoch % cfg.train.checkpoint_every == 0 or step >= total
        _report(recipe, accelerator, epoch, step, epoch_metrics, checkpointing, board, ctx)


def make_accelerator(cfg: RunConfig, recipe_cls: type[Recipe], static_graph: bool | None = None) -> Any:
    """The worker's Accelerator, with the DDP options that cut work for small models.

    Bucket views: gradients live in DDP's all-reduce buckets (no copy in or out). A static graph
    (``Recipe.ddp_static_graph``; ``static_graph`` overrides it, for tests) lets DDP skip
    re-checking which parameters were used each step. ``find_unused_parameters`` (a graph walk per
    step) only for recipes that train layer-wise, whose phases leave parameters without gradients.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    layerwise = recipe_cls.trains_layerwise
    static = recipe_cls.ddp_static_graph(cfg) if static_graph is None else static_graph
    ddp = DistributedDataParallelKwargs(find_unused_parameters=layerwise, gradient_as_bucket_view=True,
                                        static_graph=static and not layerwise)
    return Accelerator(mixed_precision=_precision(cfg), gradient_accumulation_steps=cfg.train.grad_accum_steps,
                       cpu=not cfg.resources.use_gpu, kwargs_handlers=[ddp])


def _quiet_worker_logs() -> None:
    """Per-report INFO lines from Accelerate and Ray Train would drown the driver's progress."""
    for noisy in ("accelerate", "ray.train", "ray.tune"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:  # Ray Train V2 names this logger after its file path
        from ray.train.v2._internal.execution import context

        logging.getLogger(context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass


def _to(x: torch.Tensor, recipe: Recipe, accelerator: Any) -> torch.Tensor:
    return x.reshape(-1, *recipe.data.shape).to(accelerator.device)


def _precision(cfg: RunConfig) -> str:
    mp = cfg.train.mixed_precision
    if mp == "auto":
        return "bf16" if cfg.resources.use_gpu else "no"
    return mp


def _run_epoch(recipe: Recipe, accelerator: Any, ctx: _Context, feed: Feed, epoch: int, step: int,
               board: Any) -> tuple[dict[str, float], int]:
    """One pass over this worker's shard; returns the epoch's mean step metrics and the new step.

    Metrics stay on the device: they are read back (one host sync, plus one tiny all-reduce under
    DDP that carries every worker's divergence verdict) only on logging steps — every
    ``train.log_every``-th, the last of the epoch and the last of the run. A divergence is thus
    seen up to ``log_every`` steps late; the checkpoint restored is the last one written, and one
    is written only after an epoch-end read-back found nothing wrong, so nothing good is lost.
    """
    cfg = ctx.cfg
    torch.manual_seed(hash((cfg.train.seed, ctx.rank, epoch)) % (2**63))
    start = step - epoch * ctx.steps_per_epoch
    meter = StepMeter(accelerator.device, recipe.metric_limits())
    reduce = (lambda t: accelerator.reduce(t, reduction="sum")) if ctx.world > 1 else None
    step_context = _accumulation(recipe, accelerator, cfg)
    reading = None
    examples = 0
    started = time.perf_counter()
    for x, lb in feed.epoch(epoch, start):
        log = _logging_step(step + 1, lb.index, ctx)
        batch = Batch(x=x, y=None, weight=lb.weight, step=step, epoch=epoch, log=log)
        apply_lr(recipe.optimizers.values(), cfg.train.lr_schedule, step, ctx.total_steps)
        try:
            with step_context():
                meter.add(recipe.train_step(batch))
            if log:  # guards on parameters: computed where the metrics are read back anyway
                meter.add(recipe.guard_metrics(batch))
        except TrainingDiverged as exc:  # a recipe's own guard, raised after its optimiser step
            meter.fail(str(exc))
        step += 1
        if ctx.cores is not None:
            ctx.cores.tick()
        examples += len(lb.indices) * ctx.world
        if log:
            reading = _check(meter.read(reduce), step, epoch, ctx)
            if ctx.rank == 0 and (step % cfg.train.log_every == 0 or step == ctx.total_steps):
                board.push.remote({"kind": "step", "step": step, "total": ctx.total_steps, "epoch": epoch,
                                   "metrics": reading.last})
        if step >= ctx.total_steps:
            break
    if reading is None or meter.dirty:
        reading = _check(meter.read(reduce), step, epoch, ctx)
    seconds = time.perf_counter() - started
    return reading.means | {"epoch_seconds": seconds, "examples_per_sec": examples / max(seconds, 1e-9)}, step


def _logging_step(step: int, batch_index: int, ctx: _Context) -> bool:
    """Whether the step that ends at ``step`` reads its metrics back (same answer on every worker)."""
    return (step % ctx.cfg.train.log_every == 0 or step >= ctx.total_steps
            or batch_index == ctx.steps_per_epoch - 1)


def _check(reading: Any, step: int, epoch: int, ctx: _Context) -> Any:
    """Stop all workers together when the read-back found a divergence on any of them."""
    if reading.problem:
        raise TrainingDiverged(f"training diverged by step {step} (epoch {epoch + 1}; checked every "
                               f"{ctx.cfg.train.log_every} steps and at epoch ends): {reading.problem}")
    return reading


def _accumulation(recipe: Recipe, accelerator: Any, cfg: RunConfig) -> Callable[[], Any]:
    """Accelerate's accumulate context only when accumulating (it costs a check per module per step)."""
    if cfg.train.grad_accum_steps <= 1:
        return contextlib.nullcontext
    modules = list(getattr(recipe, "wrapped", recipe.modules).values())
    return lambda: accelerator.accumulate(*modules)


def _own_cores(cfg: RunConfig) -> None:
    """A Ray worker runs ``resources.cpus_per_worker`` torch threads: the cores Ray reserved for it,
    no more (threads beyond them fight the other workers'). In-process runs (num_workers=0) keep
    torch's default, which is all cores of the machine, as a plain script would."""
    if not cfg.resources.in_process:
        torch.set_num_threads(max(1, math.floor(cfg.resources.cpus_per_worker)))


def _governor(cfg: RunConfig) -> ThreadGovernor | None:
    """``resources.yield_cores``: a Ray worker with several threads gives some back while another
    process shares its cores (pipeline/cores.py). Not in-process (a plain script's behaviour) and
    not on GPUs (the host threads only feed the device there)."""
    res = cfg.resources
    if res.in_process or res.use_gpu or not res.yield_cores:
        return None
    governor = ThreadGovernor(torch.get_num_threads(), torch.set_num_threads)
    return governor if governor.active else None


def _compile(recipe: Recipe) -> None:
    """``train.compile``: compile every module's forward in place (state-dict keys unchanged)."""
    for module in recipe.modules.values():
        module.compile()


def _restore(accelerator: Any, recipe: Recipe, cfg: RunConfig, config: dict[str, Any]) -> tuple[int, int]:
    """(epoch, step) to start from: the latest valid checkpoint when restarting or resuming."""
    import ray.train

    restarting = ray.train.get_checkpoint() is not None
    if not (restarting or config["resume"]):
        return 0, 0
    found = latest_valid(list_checkpoints(config["storage"], cfg.run_name))
    if found is None:
        return 0, 0
    local, manifest = found
    load_checkpoint(accelerator, recipe, local)
    return manifest["epoch"], manifest["step"]


def load_checkpoint(accelerator: Any, recipe: Recipe, local: Path) -> None:
    """Parameters and optimisers through Accelerate (safetensors, and torch.load with weights_only),
    the recipe's own state from model.pt with weights_only=True. Never unpickles objects."""
    refuse_pickles(local)
    accelerator.load_state(str(local / "accelerate"))
    recipe.load_state_dict(artifacts.load_torch(local / MODEL_FILE, "checkpoint").get("state", {}))


def refuse_pickles(local: Path) -> None:
    """Accelerate unpickles ``custom_checkpoint_*.pkl`` without the weights-only restriction: such a file is refused."""
    planted = sorted(p.name for p in (local / "accelerate").glob("custom_checkpoint_*.pkl"))
    if planted:
        raise UnsafeFileError(f"checkpoint: {local} holds {', '.join(planted)}, which Accelerate would unpickle "
                              f"without the weights-only restriction (it could run code); boltzgan never writes such files, so "
                              f"the checkpoint was refused. Delete that checkpoint directory or start over "
                              f"(--restart).")


def _recover(recipe: Recipe, accelerator: Any, cfg: RunConfig, config: dict[str, Any], rank: int,
             attempt: int, message: str, board: Any) -> tuple[int, int] | None:
    """Divergence guard: restore the last good checkpoint and let the recipe adapt (returns the
    (epoch, step) to continue from), or report the divergence and return None."""
    limit = recipe.guard_max_restarts()
    found = latest_valid(list_checkpoints(config["storage"], cfg.run_name))
    where = str(found[0]) if found else "none (no checkpoint was written yet)"
    if attempt > limit or found is None:
        full = f"{message}; last good checkpoint: {where}"
        if limit > 0 and found is not None:
            full += f"; gave up after {attempt - 1} restart(s) with lowered learning rates"
        elif limit > 0:
            full += "; nothing to restore from, so the divergence guard stopped the run"
        if rank == 0:
            ray_get_push(board, {"kind": "diverged", "message": full})
        return None
    local, manifest = found
    load_checkpoint(accelerator, recipe, local)
    recipe.on_divergence_restart(attempt)
    if rank == 0:
        board.push.remote({"kind": "restart", "message": f"{message}; restored {where} (attempt {attempt})"})
    return manifest["epoch"], manifest["step"]


def ray_get_push(board: Any, event: dict[str, Any]) -> None:
    """Push and wait, for events the driver must see before the worker exits."""
    import ray

    ray.get(board.push.remote(event))


def _report(recipe: Recipe, accelerator: Any, epoch: int, step: int, metrics: dict[str, float],
            checkpointing: bool, board: Any, ctx: _Context) -> None:
    """Checkpoint (rank 0 writes, all ranks report) and publish the epoch's metrics.

    Ray Train hears only from epochs that checkpoint: its report waits for the controller to take
    the previous one from a queue of size one, and the controller looks every 2 s
    (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``), so a report per epoch made every epoch shorter than
    that last 2 s (the demo's 0.2-s epochs took 2.0 s each). The driver gets every epoch's metrics
    from the progress board instead. All ranks take the same branch, as Ray's barrier requires.

    For object storage the upload is asynchronous (:func:`checkpoint_upload_mode`): Ray Train
    uploads the directory in the background and deletes it afterwards, so it is not a
    ``TemporaryDirectory`` that would vanish when this function returns.
    """
    import shutil

    import ray.train

    mode = checkpoint_upload_mode(ctx.storage, ctx.cfg.train.checkpoint_upload)
    tmp = tempfile.mkdtemp(prefix="boltzgan-ckpt-")
    handed_over = False
    try:
        ckpt = None
        if checkpointing:
            accelerator.wait_for_everyone()
            accelerator.save_state(str(Path(tmp) / "accelerate"))
            if ctx.rank == 0:
                _export_model(recipe, accelerator, Path(tmp), epoch, step)
                write_manifest(Path(tmp), epoch, step, {"metrics": metrics})
                if ctx.local:  # Ray's local mode does not persist checkpoints: do it here
                    persist_checkpoint(Path(tmp), ctx.storage, ctx.cfg.run_name, epoch, ctx.cfg.train.keep_checkpoints)
                else:
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
        if ctx.rank == 0:
            board.push.remote({"kind": "epoch", "epoch": epoch, "step": step, "total": ctx.total_steps,
                               "metrics": metrics, "checkpoint": checkpointing})
        if checkpointing:  # ckpt is None on ranks > 0 and in-process (persisted above)
            upload = {} if ckpt is None else {"checkpoint_upload_mode": mode,
                                              "delete_local_checkpoint_after_upload": True}
            ray.train.report({"epoch": epoch, "step": step, **metrics}, checkpoint=ckpt, **upload)
            handed_over = ckpt is not None
    finally:
        if not handed_over:
            shutil.rmtree(tmp, ignore_errors=True)


def _export_model(recipe: Recipe, accelerator: Any, ckpt_dir: Path, epoch: int, step: int) -> None:
    """model.pt: everything :func:`pipeline.trained.load_trained` needs, without Accelerate."""
    modules = {name: accelerator.unwrap_model(m).state_dict() for name, m in recipe.wrapped.items()}
    torch.save({"family": recipe.family, "config": recipe.cfg.model_dump(mode="json"),
                "data_shape": asdict(recipe.data), "modules": modules, "state": recipe.state_dict(),
                "epoch": epoch, "step": step, "saved_at": time.time()}, ckpt_dir / MODEL_FILE)
