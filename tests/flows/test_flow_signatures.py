"""Flow signatures survive the way deployments load flows (seconds, no server).

A served deployment ships its flow to the run's process with cloudpickle *by value*: the function is
rebuilt with only the globals its code uses, so a string annotation ("RunConfig", left by
``from __future__ import annotations``) no longer resolves and Prefect's parameter validation fails
with ``PipelineModel is not fully defined`` (issue #19). These tests fail the same way."""

from __future__ import annotations

import importlib
import inspect

import cloudpickle
import pytest
from prefect import Flow
from pydantic import BaseModel

import flows.pipeline as flows_module
from pipeline.config import load_config

FLOWS = {name: obj for name, obj in vars(flows_module).items() if isinstance(obj, Flow)}


def test_the_module_has_flows():
    assert {"run_preset"} <= set(FLOWS) and len(FLOWS) >= 3


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_annotations_are_objects_and_models_importable_at_module_level(name):
    for param in inspect.signature(FLOWS[name].fn).parameters.values():
        ann = param.annotation
        assert not isinstance(ann, str), f"{name}({param.name}: {ann!r}) is a string annotation"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            module = importlib.import_module(ann.__module__)
            assert getattr(module, ann.__qualname__, None) is ann, (
                f"{name}({param.name}): {ann.__qualname__} is not importable from {ann.__module__}")


def _by_value(flow: Flow) -> Flow:
    cloudpickle.register_pickle_by_value(flows_module)
    try:
        return cloudpickle.loads(cloudpickle.dumps(flow))
    finally:
        cloudpickle.unregister_pickle_by_value(flows_module)


def test_typed_run_config_validates_after_pickling_by_value(tmp_path):
    rebuilt = next(f for f in FLOWS.values() if "config" in inspect.signature(f.fn).parameters
                   and inspect.signature(f.fn).parameters["config"].annotation.__name__ == "RunConfig"
                   and f.name == "boltzgan-pipeline")
    rebuilt = _by_value(rebuilt)
    cfg = load_config("demo", [f"output.root={tmp_path}"])
    params = rebuilt.validate_parameters({"config": cfg.model_dump(mode="json")})  # as the API sends it
    assert params["config"] == cfg


def test_preset_flow_validates_after_pickling_by_value():
    params = _by_value(FLOWS["run_preset"]).validate_parameters({"preset": "demo", "overrides": ["train.epochs=1"]})
    assert params == {"preset": "demo", "overrides": ["train.epochs=1"]}


@pytest.mark.parametrize("preset", ["demo", "gan-ring8", "ebm-digits", "dbm-digits"])
def test_every_family_config_passes_the_deployment_parameter_schema(preset):
    """The Prefect server checks a run's parameters against this schema before the run starts (409)."""
    import jsonschema
    from prefect.utilities.callables import parameter_schema

    flow = next(f for f in FLOWS.values() if f.name == "boltzgan-pipeline")
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    jsonschema.validate({"config": load_config(preset).model_dump(mode="json")}, schema)
