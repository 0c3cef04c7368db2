"""Host facts read off this machine, without a daemon: the userland proxy from the nat rules."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from harness.host import docker_host

pytestmark = pytest.mark.unit

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
