"""The adapters' pure rules: where each generation's app looks for its runtime."""
import pytest

from harness.openhands.v0 import V0Adapter

pytestmark = pytest.mark.unit

RUNTIME = {"Config": {"Env": ["port=37395", "PATH=/usr/bin"]}}
IMAGE_ENV = {"SANDBOX_LOCAL_RUNTIME_URL": "http://host.docker.internal"}  # as the app image sets it


def test_v0_runtime_url_before_its_log_line_follows_the_apps_whole_environment() -> None:
    v0 = V0Adapter("http://127.0.0.1:9")
    # the probe may look before DockerRuntime logs the URL: the formula must give the same one
    assert v0.runtime_url("", IMAGE_ENV, RUNTIME) == "http://host.docker.internal:37395"
    assert v0.runtime_url("", {**IMAGE_ENV, "DOCKER_HOST_ADDR": "172.17.0.1"}, RUNTIME) == "http://172.17.0.1:37395"
    assert v0.runtime_url("", {}, RUNTIME) == "http://localhost:37395"  # OpenHands' own default
    logged = "Waiting for client to become ready at http://10.0.0.5:37395...\n"
    assert v0.runtime_url(logged, IMAGE_ENV, RUNTIME) == "http://10.0.0.5:37395"
    assert v0.runtime_url("", IMAGE_ENV, None) is None
    v0.close()
