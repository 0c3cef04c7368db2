"""Host facts read off this machine, without a daemon: the userland proxy from the nat rules."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.host import docker_host

PROXY_ON = "-P OUTPUT ACCEPT\n-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n"
PROXY_OFF = "-P OUTPUT ACCEPT\n-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER\n"


def _iptables(monkeypatch: pytest.MonkeyPatch, stdout: str | None) -> None:
    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        assert cmd == ["iptables", "-t", "nat", "-S", "OUTPUT"]
        if stdout is None:
            raise FileNotFoundError("iptables")
        return subprocess.CompletedProcess(cmd, 0, stdout, "")

    monkeypatch.setattr(docker_host.subprocess, "run", run)


@pytest.mark.parametrize(("rules", "expected"), [
    (PROXY_ON, "on"),
    (PROXY_OFF, "off"),  # --userland-proxy=false: NAT for loopback and between bridges too
    (PROXY_ON + PROXY_OFF.splitlines()[1] + "\n", None),  # two daemons in one namespace: cannot tell
    ("-P OUTPUT ACCEPT\n", None),  # no Docker rule here: a rootless daemon's live in its own namespace
    (None, None),  # no iptables
])
def test_the_userland_proxy_is_read_off_the_daemons_nat_rule(
        monkeypatch: pytest.MonkeyPatch, rules: str | None, expected: str | None) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    _iptables(monkeypatch, rules)
    assert docker_host.userland_proxy() == expected


def test_a_remote_daemons_rules_are_not_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    _iptables(monkeypatch, PROXY_OFF)
    assert docker_host.userland_proxy() is None


def _context(config: Path, name: str, host: str, current: bool = True) -> None:
    """A context as `docker context create NAME --docker host=HOST` writes it."""
    import hashlib
    import json

    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if current:
        (config / "config.json").write_text(json.dumps({"currentContext": name}))


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", docker_host.CONTEXT_ENV):
        monkeypatch.setenv(var, "")  # recorded, so what the code under test sets is undone after
        monkeypatch.delenv(var)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return tmp_path


def test_the_current_context_is_the_daemon_of_every_client(docker_config: Path) -> None:
    """As the CLI resolves it: the current context's endpoint becomes DOCKER_HOST, which
    docker-py, the `docker` shell-outs and the workers all read; its daemon is remote."""
    import os

    from harness.endpoint import docker_socket

    _context(docker_config, "far", "tcp://10.9.9.9:2375")
    assert docker_host.adopt_context() == "far"
    assert os.environ["DOCKER_HOST"] == "tcp://10.9.9.9:2375" and docker_host.remote()
    assert docker_socket() == "/var/run/docker.sock"  # the daemon's own socket, on its host
    assert docker_host.adopt_context() == "far"  # said again from the environment, not read twice


def test_a_rootless_context_mounts_its_socket(docker_config: Path) -> None:
    from harness.endpoint import docker_socket

    _context(docker_config, "rootless", "unix:///run/user/1000/docker.sock")
    assert docker_host.adopt_context() == "rootless"
    assert not docker_host.remote() and docker_socket() == "/run/user/1000/docker.sock"


def test_docker_host_wins_over_any_context(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    _context(docker_config, "far", "tcp://10.9.9.9:2375")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/other.sock")
    assert docker_host.adopt_context() is None and os.environ["DOCKER_HOST"] == "unix:///tmp/other.sock"


def test_the_default_context_leaves_the_local_socket(docker_config: Path) -> None:
    import os

    _context(docker_config, "far", "tcp://10.9.9.9:2375", current=False)
    assert docker_host.adopt_context() is None and "DOCKER_HOST" not in os.environ and not docker_host.remote()


def test_a_context_that_is_not_there_is_a_clear_refusal(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import DockerUnavailable

    monkeypatch.setenv("DOCKER_CONTEXT", "nowhere")
    with pytest.raises(DockerUnavailable, match="nowhere"):
        docker_host.adopt_context()


def test_doctor_reads_nothing_of_this_machine_for_a_remote_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon elsewhere: the endpoint is named, warned, and this machine's firewall, iptables
    and socket are not reported as if they were the daemon's host's."""
    from harness.host import doctor

    far = docker_host.HostFacts(server_version="20.10.24", api_version="1.41", os="Debian", kernel="6.1",
                                rootless=False, cgroup="v2/systemd", storage_driver="overlay2",
                                bridge_gateway="172.17.0.1", remote=True, docker_host="tcp://10.9.9.9:2375",
                                docker_context="far")
    monkeypatch.setattr(docker_host, "facts", lambda c=None: far)
    monkeypatch.setattr(doctor, "input_drops", lambda: pytest.fail("read this machine's INPUT chain"))
    found = {f.name: f for f in doctor.checks(object())}  # type: ignore[arg-type]
    assert found["endpoint"].value == "tcp://10.9.9.9:2375 (docker context far)" and found["endpoint"].warn
    assert found["firewall"].value == "not read: remote daemon"
    assert not {"iptables", "userland-proxy", "INPUT drops from docker0", "socket"} & set(found)
