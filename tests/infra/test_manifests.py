"""infra/ and prefect.yaml: every YAML parses and carries the fields its consumer requires.

kubeconform's schemas and the Ray launcher's JSON schema are not reachable offline, so the
required fields are checked here directly; the Ray launcher config is also validated by Ray's own
schema, which ships with the ray package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]
YAMLS = sorted(ROOT.glob("infra/**/*.yaml")) + [ROOT / "prefect.yaml"]


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_parses(path):
    assert yaml.safe_load(path.read_text())


def _load(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text())


@pytest.mark.parametrize("rel", ["infra/ray/cluster.yaml", "infra/ray/onprem.yaml"])
def test_ray_launcher_configs_validate_against_rays_schema(rel):
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = _load(rel)
    jsonschema.validate(cfg, schema)
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert cfg["docker"]["image"].split(":")[1].startswith(ray.__version__)


def test_gpu_launcher_has_gpu_workers():
    nodes = _load("infra/ray/cluster.yaml")["available_node_types"]
    assert any(n["resources"].get("GPU", 0) >= 1 and n["max_workers"] >= 1 for n in nodes.values())


def _worker_groups(spec: dict) -> list[dict]:
    return spec["workerGroupSpecs"]


@pytest.mark.parametrize("rel,kind", [("infra/kuberay/raycluster.yaml", "RayCluster"),
                                      ("infra/kuberay/rayjob.yaml", "RayJob")])
def test_kuberay_manifests(rel, kind):
    doc = _load(rel)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind and doc["metadata"]["name"]
    spec = doc["spec"] if kind == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"].split(":")[1].startswith(ray.__version__)
    for group in _worker_groups(spec):
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1
        assert any(t["key"] == "nvidia.com/gpu" for t in group["template"]["spec"]["tolerations"])
    if kind == "RayJob":
        assert doc["spec"]["entrypoint"].startswith("boltzgan run ")
        assert doc["spec"]["shutdownAfterJobFinishes"] is True
        assert "PREFECT_API_URL" in yaml.safe_load(doc["spec"]["runtimeEnvYAML"])["env_vars"]


def test_prefect_worker_and_compose():
    worker = _load("infra/prefect/worker-k8s.yaml")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["prefect", "worker", "start"]
    assert any(e["name"] == "PREFECT_API_URL" for e in container["env"])
    compose = _load("infra/prefect/docker-compose.yaml")["services"]
    assert compose["prefect"]["image"].startswith("prefecthq/prefect:3.8.8")
    assert compose["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert compose["postgres"]["image"].startswith("postgres:")


def test_prefect_deployments_point_at_real_flows_and_presets():
    from flows import pipeline as flows_module
    from pipeline.config import list_presets

    doc = _load("prefect.yaml")
    presets = list_presets()
    for dep in doc["deployments"]:
        path, func = dep["entrypoint"].split(":")
        assert (ROOT / path).exists() and hasattr(flows_module, func)
        assert dep["work_pool"]["name"]
        if "preset" in dep.get("parameters", {}):
            assert dep["parameters"]["preset"] in presets
        for sched in dep.get("schedules", []):
            assert len(sched["cron"].split()) == 5


def test_dockerfile_installs_with_the_project_pins():
    text = (ROOT / "infra/docker/Dockerfile").read_text()
    assert "constraints.txt" in text and f"rayproject/ray:{ray.__version__}" in text


def test_no_plaintext_secrets_and_nothing_exposed_without_auth():
    compose = _load("infra/prefect/docker-compose.yaml")["services"]
    assert compose["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${PREFECT_DB_PASSWORD:?")
    assert "${PREFECT_DB_PASSWORD" in compose["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert compose["prefect"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"].startswith("${")
    assert all(p.startswith("127.0.0.1:") for p in compose["prefect"]["ports"])
    for rel in ("infra/ray/cluster.yaml", "infra/ray/onprem.yaml"):
        cfg = _load(rel)
        starts = cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
        assert not any("dashboard-host" in c for c in starts), rel
        assert all("RAY_AUTH_MODE=token" in c for c in starts if c.strip() != "ray stop"), rel
    for rel in ("infra/kuberay/raycluster.yaml", "infra/kuberay/rayjob.yaml"):
        doc = _load(rel)
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        assert spec["authOptions"]["mode"] == "token"
        assert spec["headGroupSpec"]["rayStartParams"].get("dashboard-host") != "0.0.0.0"
