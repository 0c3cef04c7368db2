"""`oh-matrix doctor` on this machine: facts from the daemon, and a firewall rule flagged
while it is present."""

from __future__ import annotations

import docker
import pytest

from harness.host import docker_host, doctor
from harness.host.firewall import drop_bridge_to_host


def finding(findings: list[doctor.Finding], name: str) -> doctor.Finding:
    return next(f for f in findings if f.name == name)


def test_doctor_names_daemon_gateway_and_host_gateway(client: docker.DockerClient) -> None:
    found = doctor.checks(client)
    assert client.version()["Version"] in finding(found, "daemon").value
    assert finding(found, "bridge gateway").value == docker_host.bridge_gateway(client)
    assert finding(found, "host-gateway").value == "supported"  # this machine's daemon is 20.10+


def test_host_facts_carry_the_label_and_the_default_bridges_options(
        client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_HOST", "bench-1")
    facts = docker_host.facts(client)
    assert facts.label == "bench-1"
    options = client.networks.get("bridge").attrs["Options"]
    assert facts.bridge["name"] == options["com.docker.network.bridge.name"]
    assert facts.bridge["enable_icc"] == options["com.docker.network.bridge.enable_icc"]
    assert "default_bridge" not in facts.bridge
    assert "bench-1" in finding(doctor.checks(client), "host label").value


def test_doctor_flags_a_firewall_rule_only_while_it_is_present(client: docker.DockerClient) -> None:
    before = finding(doctor.checks(client), "INPUT drops from docker0")
    with drop_bridge_to_host(ports="65000:65001"):  # ports no cell uses: a concurrent run is unaffected
        during = finding(doctor.checks(client), "INPUT drops from docker0")
    after = finding(doctor.checks(client), "INPUT drops from docker0")
    assert during.warn and "65000:65001" in during.value and "DROP" in during.value
    assert after.value == before.value
