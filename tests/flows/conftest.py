import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real `prefect server start` (own PREFECT_HOME, free loopback port) for all slow tests."""
    from tests.flows.server import prefect_server as start

    with start(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory):
    """One output root for the slow tests: prepared data and the domain classifier are cached there once."""
    return tmp_path_factory.mktemp("runs")
