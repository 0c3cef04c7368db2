import shlex

import pytest

from harness import modes


def launch(mode: str, **kw: object) -> modes.AppLaunch:
    return modes.recipe(mode, image="app:1", api="v0", env={"SANDBOX_RUNTIME_CONTAINER_IMAGE": "rt:1"},
                        host_port=41234, **kw)  # type: ignore[arg-type]


def test_host_gateway_is_the_documented_command() -> None:
    line = launch("host-gateway").docker_run()
    args = shlex.split(line)
    assert "--add-host" in args and args[args.index("--add-host") + 1] == "host.docker.internal:host-gateway"
    assert args[args.index("-p") + 1] == "3000:3000"
    assert "/var/run/docker.sock:/var/run/docker.sock" in args
    assert "SANDBOX_RUNTIME_CONTAINER_IMAGE=rt:1" in args
    assert args[-1] == "app:1"


def test_bridge_has_no_extra_host() -> None:
    lau = launch("bridge")
    assert lau.extra_hosts == {} and lau.network_mode is None and lau.network is None
    assert "--add-host" not in lau.docker_run()


def test_host_mode_listens_on_its_own_port_and_publishes_nothing() -> None:
    lau = launch("host")
    assert lau.network_mode == "host"
    assert lau.listen_port == lau.host_port == 41234
    assert lau.command == ["uvicorn", "openhands.server.listen:app", "--host", "0.0.0.0", "--port", "41234"]
    args = shlex.split(lau.docker_run())
    assert "-p" not in args and args[args.index("--network") + 1] == "host"


def test_custom_network_needs_and_uses_its_network() -> None:
    with pytest.raises(ValueError):
        launch("custom-network")
    lau = launch("custom-network", network="oh-matrix-x")
    line = lau.docker_run()
    assert line.startswith("docker network create oh-matrix-x && docker run")
    assert "--network oh-matrix-x" in line and "host.docker.internal:host-gateway" in line


def test_secrets_become_placeholders() -> None:
    lau = modes.recipe("host-gateway", image="app:1", api="v0", env={"LLM_API_KEY": "sk-canary-123"},
                       host_port=1)
    line = lau.docker_run(frozenset({"LLM_API_KEY"}))
    assert "sk-canary-123" not in line and "LLM_API_KEY=<LLM_API_KEY>" in line
