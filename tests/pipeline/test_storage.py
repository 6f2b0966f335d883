"""output.storage: URIs and options, the run directory and samples written through to S3 (moto's
server on loopback), prepared data via a node cache, elastic worker ranges (seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError, UserError
from pipeline.rundir import RunDir, run_store, storage_of
from pipeline.storage import Store, is_object_store, storage_uri
from tests.s3_server import s3_server

pytestmark = pytest.mark.s3

BASE = ["name=st", "model.family=rbm", "model.n_hidden=4"]


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


def _cfg(root: Path, *extra: str):
    return load_config(None, [*BASE, f"output.root={root}", *extra])


# ------------------------------------------------------------------ URIs, options, defaults
def test_options_and_the_aws_endpoint_variable_become_pyarrow_uri_options(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert storage_uri("s3://b/p", {"endpoint_override": "h:9", "scheme": "http"}) == \
        "s3://b/p?endpoint_override=h:9&scheme=http"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
    assert storage_uri("s3://b/p") == "s3://b/p?endpoint_override=minio.storage:9000&scheme=http"
    assert storage_uri("gs://b/p") == "gs://b/p"  # the variable is S3's


def test_options_on_a_local_path_are_refused_naming_both_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"output.storage_options=.*output.storage=.*local path"):
        storage_uri(str(tmp_path), {"endpoint_override": "h:1"})


def test_default_and_root_storage_keep_the_run_directory_as_the_only_copy(tmp_path):
    assert run_store(_cfg(tmp_path)) is None
    assert RunDir.of(_cfg(tmp_path)).store is None
    assert run_store(_cfg(tmp_path, f"output.storage={tmp_path}")) is None
    elsewhere = run_store(_cfg(tmp_path / "runs", f"output.storage={tmp_path / 'shared'}"))
    assert elsewhere is not None and elsewhere.is_local and elsewhere.base == str(tmp_path / "shared")


def test_async_upload_is_chosen_for_object_storage_only(tmp_path):
    from ray.train import CheckpointUploadMode

    from pipeline.engine import checkpoint_upload_mode

    assert checkpoint_upload_mode("s3://b/p?endpoint_override=h:1") is CheckpointUploadMode.ASYNC
    assert checkpoint_upload_mode("gs://b/p") is CheckpointUploadMode.ASYNC
    assert checkpoint_upload_mode(str(tmp_path)) is CheckpointUploadMode.SYNC
    assert checkpoint_upload_mode("s3://b/p", "sync") is CheckpointUploadMode.SYNC  # the benchmark's comparison
    assert checkpoint_upload_mode(str(tmp_path), "async") is CheckpointUploadMode.ASYNC
    assert is_object_store("s3://b") and not is_object_store(str(tmp_path)) and not is_object_store(None)


# ------------------------------------------------------------------ elastic worker ranges
@pytest.mark.parametrize("value, expected, elastic", [("1..4", (1, 4), True), (" 2 .. 3 ", (2, 3), True),
                                                      ("2", (2, 2), False), ("3..3", (3, 3), False),
                                                      (0, (0, 0), False)])
def test_worker_ranges(tmp_path, value, expected, elastic):
    res = _cfg(tmp_path).resources.model_copy()
    res = type(res).model_validate({**res.model_dump(), "num_workers": value})
    assert res.worker_range == expected and res.elastic is elastic
    assert res.in_process is (expected == (0, 0))


@pytest.mark.parametrize("value", ["0..2", "3..1", "1-2", "two", "1..", "-1"])
def test_bad_worker_ranges_name_the_field_the_value_and_the_fix(tmp_path, value):
    with pytest.raises(UserError) as err:
        _cfg(tmp_path, f"resources.num_workers={value}")
    text = str(err.value)
    assert "resources.num_workers" in text and "MIN..MAX" in text


# ------------------------------------------------------------------ the run in S3
def _s3_cfg(root: Path, s3, *extra: str):
    return _cfg(root, f"output.storage=s3://{s3.bucket}/unit", f"output.storage_options.endpoint_override={s3.endpoint}",
                "output.storage_options.scheme=http", *extra)


def test_storage_path_for_ray_carries_the_options(tmp_path, s3):
    cfg = _s3_cfg(tmp_path, s3)
    assert storage_of(cfg).startswith(f"s3://{s3.bucket}/unit?") and "scheme=http" in storage_of(cfg)
    store = run_store(cfg)
    assert store is not None and not store.is_local


def test_run_files_go_through_to_s3_and_come_back_after_the_local_copy_is_deleted(tmp_path, s3):
    cfg = _s3_cfg(tmp_path, s3, "output.run_name=files")
    run = RunDir.of(cfg)
    run.write_config(cfg)
    run.write_state({"epoch": 3, "step": 9})
    run.append_epoch({"epoch": 1})
    run.append_epoch({"epoch": 2})
    run.write_evaluation({"results": []})
    keys = s3.keys("unit/files/")
    assert {"unit/files/config.yaml", "unit/files/state.json", "unit/files/metrics.jsonl",
            "unit/files/eval/metrics.json"} <= set(keys)
    shutil.rmtree(run.path)
    again = RunDir.of(cfg)
    assert again.has_config() and again.read_state() == {"epoch": 3, "step": 9}
    assert [e["epoch"] for e in again.epochs()] == [1, 2]
    again.append_epoch({"epoch": 3})  # continues the stored log, not a fresh local one
    shutil.rmtree(run.path)
    assert [e["epoch"] for e in RunDir.of(cfg).epochs()] == [1, 2, 3]
    assert RunDir.at(f"s3://{s3.bucket}/unit/files?endpoint_override={s3.endpoint}&scheme=http").read_state()["step"] == 9


def test_a_run_uri_without_a_config_is_refused(s3):
    with pytest.raises(UserError, match="holds no config.yaml"):
        RunDir.at(f"s3://{s3.bucket}/unit/none?endpoint_override={s3.endpoint}&scheme=http")


def test_sample_blocks_are_written_to_s3_only_and_read_back_through_the_cache(tmp_path, s3):
    cfg = _s3_cfg(tmp_path, s3, "output.run_name=samples")
    samples = RunDir.of(cfg).samples
    samples.clear()
    samples.write_block(0, x=np.arange(6.0).reshape(2, 3))
    assert not samples.block(0).exists()  # the writer (any node) never writes the driver's path
    assert samples.has_block(0) and not samples.is_complete()
    samples.write_manifest({"blocks": 1})
    assert samples.is_complete()
    np.testing.assert_array_equal(samples.read_block(0, "x")["x"], np.arange(6.0).reshape(2, 3))
    shutil.rmtree(samples.path)
    assert RunDir.of(cfg).samples.read_manifest() == {"blocks": 1}
    RunDir.of(cfg).samples.clear()
    assert not [k for k in s3.keys("unit/samples/samples/") if not k.endswith("/")]  # pyarrow keeps a folder marker


def test_prepared_data_reaches_a_node_through_its_cache_keyed_by_fingerprint(tmp_path, s3):
    from pipeline.data import mirror, prepare
    from pipeline.errors import DataError

    cfg = _s3_cfg(tmp_path, s3, "data.source=digits", "data.limit=60")
    data = prepare(cfg.data, tmp_path / "prepared")
    store = Store.open(cfg.output.storage, cfg.output.storage_options)
    mirror.publish(data, store, "data/" + data.meta.fingerprint)
    shutil.rmtree(data.path)
    mirror.publish(data, store, "data/" + data.meta.fingerprint)  # already there: the local copy is not needed
    got = mirror.fetch(store, "data/" + data.meta.fingerprint, data.meta.fingerprint, tmp_path / "node")
    assert Path(got.path) == tmp_path / "node" / data.meta.fingerprint and got.meta.n_train == data.meta.n_train
    with pytest.raises(DataError, match="no complete prepared dataset"):
        mirror.fetch(store, "data/missing", "missing", tmp_path / "node")
