"""Starting/joining Ray and refusing requests the cluster cannot place (no Ray is started here)."""

from __future__ import annotations

import pytest
import ray

from pipeline.errors import ResourceError
from pipeline.ray_utils import check_resources, ensure_ray, workers_that_fit


def _node(cpu: float, gpu: float = 0.0, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpu, "GPU": gpu} if gpu else {"CPU": cpu}}


def test_a_worker_cannot_span_nodes():
    two_one_gpu_nodes = [_node(8, 1), _node(8, 1)]
    assert workers_that_fit(two_one_gpu_nodes, 1, 2) == 0  # 2 GPUs in total, but never on one node
    assert workers_that_fit(two_one_gpu_nodes, 1, 1) == 2
    assert workers_that_fit(two_one_gpu_nodes, 2, 0.25) == 8  # fractions: 4 per GPU, 4 per node by CPU
    assert workers_that_fit([_node(3), _node(2), _node(16, alive=False)], 1.5) == 3


@pytest.fixture
def cluster(monkeypatch):
    def set_nodes(*nodes):
        alive = [n for n in nodes if n["Alive"]]
        totals = {k: sum(n["Resources"].get(k, 0.0) for n in alive) for k in ("CPU", "GPU")}
        monkeypatch.setattr(ray, "nodes", lambda: list(nodes))
        monkeypatch.setattr(ray, "cluster_resources", lambda: {k: v for k, v in totals.items() if v})
    return set_nodes


def test_check_resources_names_what_the_cluster_has(cluster):
    cluster(_node(2))
    check_resources(2, 1.0)
    check_resources(0, 64.0)  # nothing to place
    with pytest.raises(ResourceError, match=r"3 worker\(s\) × \(1 CPU, 0 GPU\).*has 2 CPU and 0 GPU in 1 node"
                                            r".*room for 2.*lower sample.workers to 2"):
        check_resources(3, 1.0, setting="sample.workers")
    with pytest.raises(ResourceError, match=r"\(1 CPU, 0.5 GPU\).*has 2 CPU and 0 GPU.*room for 0"):
        check_resources(1, 1.0, 0.5)
    cluster(_node(4, 1), _node(4, 1))
    check_resources(4, 1.0, 0.5)
    with pytest.raises(ResourceError, match="room for 0"):
        check_resources(1, 1.0, 2.0)


@pytest.fixture
def fake_init(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    return calls


def test_ensure_ray_joins_the_given_address_then_ray_address_else_starts_quietly(fake_init, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    ensure_ray("10.0.0.1:6379")
    ensure_ray(None)
    monkeypatch.delenv("RAY_ADDRESS")
    ensure_ray(None)
    assert [c.get("address") for c in fake_init] == ["10.0.0.1:6379", "ray://head:10001", "local"]  # local: a new instance
    assert all(c["include_dashboard"] is False and c["logging_level"] >= 30 for c in fake_init)


def test_ensure_ray_keeps_an_existing_connection(fake_init, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    ensure_ray("10.0.0.1:6379")
    assert fake_init == []


# ---------------------------------------------------------------------------- a local Ray binds loopback
_LIST_SOCKETS = r'''
import json, psutil, ray
from pipeline.ray_utils import ensure_ray

ensure_ray()

@ray.remote
def task():
    return 1

@ray.remote(num_cpus=0)
class Actor:
    def ping(self):
        return 1

assert ray.get(task.remote()) == 1
actor = Actor.remote()
assert ray.get(actor.ping.remote()) == 1
me = psutil.Process()
found = []
for proc in [me, *me.children(recursive=True)]:
    try:
        found += [[proc.name(), c.laddr.ip, c.laddr.port] for c in proc.net_connections(kind="inet")
                  if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
import os
print("AUTH " + os.environ.get("RAY_AUTH_MODE", "unset"))
print("SOCKETS" + json.dumps(found))
ray.shutdown()
'''


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


@pytest.mark.ray
def test_a_local_ray_started_by_boltzgan_listens_on_loopback_only():
    """Every listening socket of the processes ensure_ray starts (GCS, raylet, agents, workers,
    the driver) is bound to 127.0.0.1; only this subprocess's own descendants are inspected."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run([sys.executable, "-c", _LIST_SOCKETS], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    sockets = json.loads(out.stdout.split("SOCKETS", 1)[1].splitlines()[0])
    names = {name for name, _, _ in sockets}
    assert "gcs_server" in names and "raylet" in names, sockets  # the inspection saw Ray's processes
    exposed = [s for s in sockets if not _loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert "AUTH token" in out.stdout  # and Ray's token authentication stays on
