import shlex

import pytest

from harness import generations, modes
from harness.errors import InputError

# The modes whose launch is a container (the native mode's is a host process: test_native.py).
CONTAINER_MODES = [n for n, m in modes.MODES.items() if not getattr(m, "host_process", False)]


def launch(mode: str, gen: str = "v0", **kw: object) -> modes.AppLaunch:
    return modes.get(mode).launch(generations.get(gen), image="app:1", env={"SANDBOX_RUNTIME_CONTAINER_IMAGE": "rt:1"},
                                  host_port=41234, **kw)  # type: ignore[arg-type]


def test_host_gateway_is_the_documented_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
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
    lau = launch("custom-network", networks={"own": "oh-matrix-x"})
    line = lau.docker_run()
    assert line.startswith("docker network create oh-matrix-x && docker run")
    assert "--network oh-matrix-x" in line and "host.docker.internal:host-gateway" in line


def test_secrets_become_placeholders() -> None:
    lau = modes.get("host-gateway").launch(generations.V0, image="app:1", env={"LLM_API_KEY": "sk-canary-123"},
                                           host_port=1)
    line = lau.docker_run(frozenset({"LLM_API_KEY"}))
    assert "sk-canary-123" not in line and " -e LLM_API_KEY " in line  # by name: the value where the line runs


def test_docker_picks_the_published_port_unless_the_app_must_know_it() -> None:
    v0 = modes.get("host-gateway").launch(generations.V0, image="a", env={}, host_port=None)
    assert v0.host_port is None and not v0.publish_all and v0.harness_env == {}
    with pytest.raises(ValueError, match="calls the app back"):
        modes.get("host-gateway").launch(generations.V1, image="a", env={}, host_port=None)
    v1 = launch("host-gateway", gen="v1")
    assert v1.publish_all and v1.harness_env == {"SANDBOX_HOST_PORT": "41234"}


def test_host_mode_adds_what_the_generation_needs_and_may_have_to_run_alone() -> None:
    v1 = launch("host", gen="v1")
    assert v1.env["AGENT_SERVER_USE_HOST_NETWORK"] == "true"
    assert v1.command is not None and "openhands.app_server.app:app" in v1.command
    assert modes.fixed_host_ports(modes.get("host"), generations.V1) == (8000, 8001, 8011, 8012)
    assert modes.fixed_host_ports(modes.get("host"), generations.V0) == ()
    assert modes.fixed_host_ports(modes.get("host-gateway"), generations.V1) == ()
    # 1.0/1.1: the sandbox calls back host port 3000 whatever the app is told
    old = generations.V1.at("1.1.0")
    assert modes.fixed_host_ports(modes.get("host-gateway"), old) == (3000,)
    assert modes.get("bridge").fixed_app_port(old) == 3000
    assert modes.fixed_host_ports(modes.get("host"), old) == (3000,)  # and its sandbox cannot join the host network


def test_unknown_modes_and_generations_are_errors_not_defaults() -> None:
    with pytest.raises(InputError, match="unknown mode 'bridgee'"):
        modes.get("bridgee")
    with pytest.raises(InputError, match="unknown API generation 'v9'"):
        generations.get("v9")
    with pytest.raises(InputError, match="no API generation covers major version 7"):
        generations.for_tag("7.0")
    assert generations.for_tag("latest").name == "canvas" and generations.for_tag("0.61").name == "v0"


def test_every_mode_has_a_distinct_rank_and_every_remedy_names_a_mode_of_the_registry() -> None:
    from harness import remedies

    ranks = [m.rank for m in modes.MODES.values()]
    assert len(set(ranks)) == len(ranks)  # they only sort: a new mode may take any free number
    assert all(r.mode is None or r.mode in modes.MODES for r in remedies.REMEDIES.values())


@pytest.mark.parametrize(("docker_host", "socket"), [
    ("unix:///run/ohd2/docker.sock", "/run/ohd2/docker.sock"),  # a second daemon on the machine
    ("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"),  # rootless
    ("ssh://me@10.0.0.5", "/var/run/docker.sock"),  # a remote daemon over ssh: its host's own socket
])
def test_the_app_gets_the_socket_of_the_daemon_the_cell_runs_on(
        monkeypatch: pytest.MonkeyPatch, docker_host: str, socket: str) -> None:
    """The app starts its runtime through the mounted socket: on the daemon the harness
    talks to, and the line a person copies says which."""
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    for mode in CONTAINER_MODES:
        lau = launch(mode, "v1", networks={"own": "net"} if mode == "custom-network" else None)
        assert lau.socket == socket
        args = shlex.split(lau.docker_run())
        assert args[args.index("-v") + 1] == f"{socket}:/var/run/docker.sock"


def test_the_harness_listens_above_the_ports_openhands_picks_for_its_runtimes() -> None:
    import socket

    from harness.host.containers import HARNESS_PORTS, free_port

    ports = {free_port() for _ in range(5)}
    # V0 picks 30000-59999, V1 the kernel's ephemeral range (32768-60999 by default)
    assert all(p in HARNESS_PORTS and p > 60999 for p in ports), ports
    with socket.socket() as held:  # a port in use is never given
        port = free_port()
        held.bind(("0.0.0.0", port))
        assert all(free_port() != port for _ in range(50))


@pytest.mark.parametrize("gen", ["v0", "v1"])
@pytest.mark.parametrize("mode", CONTAINER_MODES)
def test_the_container_that_runs_is_the_line_people_read_placed(mode: str, gen: str) -> None:
    """One description, two renderings: the container the harness starts has every setting
    of the docker run line a person reads, and differs only by the harness's placement (the
    host port it picked and the address it publishes on, the settings that follow from them,
    the cell's name)."""
    from harness.host.containers import app_container

    lau = launch(mode, gen, networks={"own": "oh-matrix-net"} if mode == "custom-network" else None)
    person = shlex.split(lau.docker_run().split(" && ")[-1])
    app = app_container(lau.image, lau.options(placed=True, name="oh-matrix-cell"), lau.argv(), {"l": "1"})
    env = {k: v for k, v in (a.split("=", 1) for a, f in zip(person[1:], person, strict=False) if f == "-e")}
    assert {k: v for k, v in app.env.items() if k not in lau.harness_env} == env
    assert app._name == "oh-matrix-cell" and app._kwargs["labels"] == {"l": "1"}
    assert app.volumes == {lau.socket: {"bind": "/var/run/docker.sock", "mode": "rw"}}
    hosts = [a for a, f in zip(person[1:], person, strict=False) if f == "--add-host"]
    assert [f"{h}:{ip}" for h, ip in app._kwargs.get("extra_hosts", {}).items()] == hosts
    networks = [a for a, f in zip(person[1:], person, strict=False) if f == "--network"]
    assert networks == ([app._kwargs["network_mode"]] if "network_mode" in app._kwargs else []) + \
        ([app._kwargs["network"]] if "network" in app._kwargs else [])
    if mode == "host":
        assert app.ports == {} and "-p" not in person and app._command == lau.command
    else:  # a person's -p 3000:3000; the harness's own free port, on loopback unless the sandbox calls back
        assert person[person.index("-p") + 1] == "3000:3000"
        assert app.ports == {"3000/tcp": [("0.0.0.0" if gen == "v1" else "127.0.0.1", 41234)]}


def test_a_release_whose_sandbox_cannot_join_the_host_network_is_said_so() -> None:
    host = modes.get("host")
    old = host.launch(generations.V1.at("1.2.0"), image="app", env={}, host_port=3000)
    assert "AGENT_SERVER_USE_HOST_NETWORK" not in old.env and "SANDBOX_USE_HOST_NETWORK" not in old.env
    assert any("cannot join the host network" in n for n in old.placement)
    mid = host.launch(generations.V1.at("1.5.0"), image="app", env={}, host_port=3000)
    assert mid.env["SANDBOX_USE_HOST_NETWORK"] == "true" and not mid.placement
    newest = host.launch(generations.V1, image="app", env={}, host_port=3000)
    assert newest.env["AGENT_SERVER_USE_HOST_NETWORK"] == "true"
