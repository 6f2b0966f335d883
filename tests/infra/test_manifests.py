"""infra/ and prefect.yaml: every YAML parses and carries the fields its consumer requires.

kubeconform's schemas and the Ray launcher's JSON schema are not reachable offline, so the
required fields are checked here directly; the Ray launcher config is also validated by Ray's own
schema, which ships with the ray package."""

from __future__ import annotations

import importlib
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
        module, func = dep["entrypoint"].split(":")
        assert importlib.import_module(module) is flows_module and hasattr(flows_module, func)
        assert dep["work_pool"]["name"]
        if "preset" in dep.get("parameters", {}):
            assert dep["parameters"]["preset"] in presets
        for sched in dep.get("schedules", []):
            assert len(sched["cron"].split()) == 5


def test_dockerfile_installs_with_the_project_pins():
    text = (ROOT / "infra/docker/Dockerfile").read_text()
    assert "constraints.txt" in text and f"rayproject/ray:{ray.__version__}" in text


# ------------------------------------------------------------------ schemas that ship with the tools
def test_prefect_yaml_validates_against_prefects_own_model():
    """Prefect's CLI reads prefect.yaml through ``PrefectYamlModel``; unknown schedule keys are errors there."""
    from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig

    doc = _load("prefect.yaml")
    model = PrefectYamlModel.model_validate(doc)
    assert len(model.deployments) == len(doc["deployments"]) >= 1
    for dep in doc["deployments"]:
        for sched in dep.get("schedules", []):
            RawScheduleConfig.model_validate(sched)


def test_prefect_deployment_parameters_match_the_flows_parameter_schema():
    """Each deployment's parameters validate against its flow's own JSON schema (what the server
    enforces), and a preset deployment's overrides make a valid RunConfig before anything runs."""
    import importlib

    import jsonschema

    from pipeline.config import load_config

    for dep in _load("prefect.yaml")["deployments"]:
        path, func = dep["entrypoint"].split(":")
        flow_obj = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)
        schema = flow_obj.parameters.model_dump()
        params = dep.get("parameters", {})
        if not params:  # e.g. the typed RunConfig deployment: its form is filled in at run time
            continue
        jsonschema.validate(params, schema)
        if "preset" in params:
            load_config(params["preset"], params.get("overrides", []))


def test_kubernetes_objects_are_well_formed():
    """No Kubernetes schema ships offline: the structure kubectl would reject is checked directly."""
    worker = _load("infra/prefect/worker-k8s.yaml")
    assert worker["apiVersion"] == "apps/v1" and worker["kind"] == "Deployment"
    spec = worker["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()  # a selector must match its pods
    for doc in (_load("infra/kuberay/raycluster.yaml")["spec"], _load("infra/kuberay/rayjob.yaml")["spec"]
                ["rayClusterSpec"], spec):
        groups = [doc["template"]] if "template" in doc else [doc["headGroupSpec"]["template"]] + [
            g["template"] for g in doc["workerGroupSpecs"]]
        for template in groups:
            names = [c["name"] for c in template["spec"]["containers"]]
            assert len(names) == len(set(names)) and all(names)
            for c in template["spec"]["containers"]:
                assert c["image"] and ":" in c["image"]  # a tagged image
                for env in c.get("env", []):
                    assert set(env) <= {"name", "value", "valueFrom"} and env["name"]


def test_entrypoints_name_real_commands_presets_and_valid_overrides():
    """`boltzgan run PRESET --set ...` in the RayJob and the cluster launcher's usage line parses
    and validates with the same config code the CLI runs."""
    import shlex

    from pipeline.cli import app
    from pipeline.config import load_config

    lines = [_load("infra/kuberay/rayjob.yaml")["spec"]["entrypoint"]]
    lines += [line.lstrip("# ").strip().strip('"').rstrip("\\").strip()
              for line in (ROOT / "infra/ray/cluster.yaml").read_text().splitlines() if "boltzgan run" in line]
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    for line in lines:
        words = shlex.split(line.split('"')[0])
        assert words[0] == "boltzgan" and words[1] in commands
        overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set" and i + 1 < len(words)]
        load_config(words[2], overrides)
def _dockerfile() -> dict:
    """WORKDIR, the COPY'd directories and the pip install line of the container image."""
    text = (ROOT / "infra/docker/Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    workdir = next(line.split(maxsplit=1)[1] for line in lines if line.startswith("WORKDIR "))
    copied = {line.split()[-1].removeprefix("./").rstrip("/") for line in lines if line.startswith("COPY ")}
    return {"workdir": workdir, "copied": copied, "text": text}


def _pull_dir(steps: list[dict]) -> str:
    (step,) = [s for s in steps if "prefect.deployments.steps.set_working_directory" in s]
    return step["prefect.deployments.steps.set_working_directory"]["directory"]


def _k8s_worker() -> dict:
    return _load("infra/prefect/worker-k8s.yaml")["spec"]["template"]["spec"]["containers"][0]


def test_kubernetes_deployments_worker_and_image_agree():
    """The k8s deployments run in the image's WORKDIR, on the pool the k8s worker polls, from an
    entrypoint the image contains, with the image family the worker itself runs."""
    doc, image = _load("prefect.yaml"), _dockerfile()
    worker = _k8s_worker()
    command = worker["command"]
    pool = command[command.index("--pool") + 1]
    assert command[command.index("--type") + 1] == "kubernetes"
    k8s = [d for d in doc["deployments"] if d["work_pool"]["name"] == pool]
    assert k8s, f"no prefect.yaml deployment targets the pool {pool!r} that infra/prefect/worker-k8s.yaml polls"
    for dep in k8s:
        assert _pull_dir(dep.get("pull", doc["pull"])) == image["workdir"], dep["name"]
        module = dep["entrypoint"].split(":")[0]
        top = module.split("/")[0] if module.endswith(".py") else module.split(".")[0]
        assert top in image["copied"], f"{dep['entrypoint']}: {top}/ is not copied into the image"
        repo = dep["work_pool"]["job_variables"]["image"].rsplit(":", 1)[0]
        assert worker["image"].rsplit(":", 1)[0] == repo
    assert '".[k8s]"' in image["text"], "the image must install prefect-kubernetes for `--type kubernetes`"


def test_process_pool_deployments_run_in_the_checkout_named_by_boltzgan_home():
    doc = _load("prefect.yaml")
    process = [d for d in doc["deployments"] if d["work_pool"]["name"] == "boltzgan-process"]
    assert {d["name"] for d in process} >= {"demo", "custom"}
    for dep in process:
        assert _pull_dir(dep.get("pull", doc["pull"])) == "{{ $BOLTZGAN_HOME }}", dep["name"]


def test_entrypoints_are_module_paths_that_do_not_shadow_the_pipeline_package():
    """A `file.py:flow` entrypoint is loaded as a module named after the file: flows/pipeline.py would
    become `pipeline` and hide the package of that name. Module paths import normally."""
    for dep in _load("prefect.yaml")["deployments"]:
        module, func = dep["entrypoint"].split(":")
        assert not module.endswith(".py") and module.startswith("flows."), dep["entrypoint"]


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


# ------------------------------------------------------------------ the storage contract (issue 20)
STORAGE_SECRET = "boltzgan-storage"


def _pod_containers() -> dict[str, list[dict]]:
    """Every container of every pod template in infra/kuberay and the Prefect k8s worker."""
    out = {}
    for rel in ("infra/kuberay/raycluster.yaml", "infra/kuberay/rayjob.yaml"):
        doc = _load(rel)
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
        out[rel] = [c for t in templates for c in t["spec"]["containers"]]
    out["infra/prefect/worker-k8s.yaml"] = [_k8s_worker()]
    return out


def test_every_pod_gets_the_storage_credentials_from_the_secret():
    """Pods share only object storage: each one (head, workers, Prefect worker) needs its credentials,
    from a Kubernetes Secret, never as literal values."""
    for rel, containers in _pod_containers().items():
        for c in containers:
            refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
            assert STORAGE_SECRET in refs, f"{rel}: container {c['name']} lacks envFrom secretRef {STORAGE_SECRET}"
            literal = {e["name"] for e in c.get("env", []) if "value" in e}
            assert not literal & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, rel


def test_cluster_runs_put_output_storage_in_object_storage():
    from pipeline.config import load_config
    from pipeline.storage import is_object_store

    import shlex

    words = shlex.split(_load("infra/kuberay/rayjob.yaml")["spec"]["entrypoint"])
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    runs = [load_config(words[2], overrides)]
    doc = _load("prefect.yaml")
    runs += [load_config(d["parameters"]["preset"], d["parameters"]["overrides"]) for d in doc["deployments"]
             if d["work_pool"]["name"] == "boltzgan-k8s"]
    for cfg in runs:
        assert is_object_store(cfg.output.storage), cfg.name


def test_the_rayjobs_elastic_range_fits_its_worker_group():
    """num_workers=MIN..MAX: MIN GPUs must exist at start (minReplicas), MAX may join (maxReplicas)."""
    import shlex

    from pipeline.config import load_config

    doc = _load("infra/kuberay/rayjob.yaml")
    words = shlex.split(doc["spec"]["entrypoint"])
    cfg = load_config(words[2], [words[i + 1] for i, w in enumerate(words) if w == "--set"])
    low, high = cfg.resources.worker_range
    (group,) = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert cfg.resources.elastic and group["minReplicas"] >= low and group["maxReplicas"] >= high


def test_readme_states_the_storage_contract_as_infra_implements_it():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Cluster storage"):]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    for needed in ("output.storage", "object storage", STORAGE_SECRET, "storage_options", "AWS_ENDPOINT_URL",
                   "num_workers", ".."):
        assert needed in section, needed
