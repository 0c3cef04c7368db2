"""A remote daemon (DOCKER_HOST tcp:// or ssh://, or a context naming one), without one: where
its ports are reached, how the app reaches it, what is refused before anything starts, and
what the harness does not read on this machine in its place."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness import endpoint, generations, matrix, modes, remedies, workflow
from harness.errors import InputError
from harness.host import containers, docker_host
from harness.model import Boot, Direction
from harness.report import markdown


@pytest.mark.parametrize(("host", "address", "remote"), [
    ("tcp://10.213.0.2:2375", "10.213.0.2", True),
    ("ssh://me@build-7.example:2222", "build-7.example", True),
    ("unix:///run/user/1000/docker.sock", "127.0.0.1", False),
    (None, "127.0.0.1", False),
])
def test_published_ports_are_reached_at_the_daemons_host(monkeypatch: pytest.MonkeyPatch, host: str | None,
                                                         address: str, remote: bool) -> None:
    if host is None:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
    else:
        monkeypatch.setenv("DOCKER_HOST", host)
    assert endpoint.remote() is remote and endpoint.daemon_address() == address


def test_a_tcp_daemon_is_named_to_the_app_not_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's host's socket path is unknown from here: the app gets DOCKER_HOST, which its
    docker client reads, and the line people copy says so."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.213.0.2:2375")
    gen = generations.get("v1")
    launch = modes.get("host-gateway").launch(gen, image="app", env={**endpoint.app_env()}, host_port=61234,
                                              networks={}, site=None)  # type: ignore[arg-type]
    options = launch.options(placed=True)
    assert ("-e", "DOCKER_HOST=tcp://10.213.0.2:2375") in options
    assert not any(v.endswith(":/var/run/docker.sock") for k, v in options if k == "-v")
    assert "-e DOCKER_HOST=tcp://10.213.0.2:2375" in launch.docker_run(frozenset())
    # an ssh:// daemon's host is where the CLI's dial-stdio reached its default socket: mounted
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@build-7")
    assert endpoint.app_env() == {} and endpoint.app_socket() == "/var/run/docker.sock"


def test_a_tls_daemon_is_refused_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.213.0.2:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    why = docker_host.unusable_remote()
    assert why is not None and "DOCKER_TLS_VERIFY" in why and "certificates" in why
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    assert docker_host.unusable_remote() is None


def test_a_deployments_host_folder_is_refused_on_a_remote_daemon(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yml").write_text(
        "services:\n  oh:\n    image: docker.openhands.dev/openhands/openhands:0.62\n"
        "    ports: ['3000:3000']\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n"
        "      - ~/.openhands:/.openhands\n      - state:/state\n"
        "volumes:\n  state: {}\n")
    (tmp_path / "m.toml").write_text('[[targets]]\ntag = "0.62"\n[deployments.mine]\ncompose = "compose.yml"\n')
    m = matrix.load(str(tmp_path / "m.toml"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    workflow.remote_binds(m)  # the daemon's folder is this machine's: placed as usual
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.213.0.2:2375")
    with pytest.raises(InputError, match=r"compose.yml.*volume .*\.openhands:/\.openhands.*remote daemon"):
        workflow.remote_binds(m)


def test_a_free_port_on_a_remote_daemon_is_one_its_host_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]  # bound, never listening: a connect is refused
            monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
            monkeypatch.setattr(containers.random, "sample", lambda population, k: [taken, free])
            assert containers.free_port() == free


def test_host_changes_are_not_tried_for_a_remote_daemon() -> None:
    """/etc/hosts and the firewall of this machine are not the daemon's host's."""
    from test_remedies import failed

    r = failed("dns-unresolved", api="v1", mode="host")
    r.connect.direction = Direction.CALLBACK
    here = remedies.Context(gateway="172.17.0.1", mode="host")
    there = remedies.Context(gateway="172.17.0.1", mode="host", remote=True)
    assert "v1-hosts-entry" in [x.name for x, _ in remedies.applicable(r, here)]
    assert "v1-hosts-entry" not in [x.name for x, _ in remedies.applicable(r, there)]


def test_what_is_not_read_is_said() -> None:
    assert Boot(remote=True, cpu_cores=0.8).summary().startswith("the daemon host's load not read: remote daemon")
    from harness.model import Host, Run

    at = {"run_id": "r", "started_at": "2026-12-03T00:00:00+00:00", "finished_at": "2026-12-03T00:01:00+00:00",
          "backend": "pypi"}
    run = Run(**at, host=Host(remote=True, docker_host="tcp://x:2375"))
    assert markdown.host_facts(run)["not_read"] == markdown.NOT_READ_REMOTE
    assert "not_read" not in markdown.host_facts(Run(**at))


def test_app_env_from_the_environment_is_pairs_and_a_bad_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import knobs

    monkeypatch.setenv("OH_MATRIX_APP_ENV", "SANDBOX_STARTUP_GRACE_SECONDS=60  LOG_LEVEL=debug")
    assert knobs.app_env() == {"SANDBOX_STARTUP_GRACE_SECONDS": "60", "LOG_LEVEL": "debug"}
    monkeypatch.setenv("OH_MATRIX_APP_ENV", "NOVALUE")
    with pytest.raises(InputError, match="OH_MATRIX_APP_ENV: 'NOVALUE'"):
        knobs.check_all()
    monkeypatch.delenv("OH_MATRIX_APP_ENV")
    assert knobs.app_env() == {}
