"""Firewalls that reject, for real: rules in iptables and in a native nftables table on the
path from the default bridge to this host, each scoped to ports no cell uses and removed
after. The kernel's answers are what the probes see; the rules are what the harness reads;
the accept rule the firewall-accept remedy makes lets exactly that traffic through; and the
judge, given what the kernel answered and the rules as read, names the rule at once."""

from __future__ import annotations

import contextlib
import errno
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from harness.cells.diagnosis import Judge, Observation
from harness.cells.facts import address_of
from harness.host import cleanup, docker_host, firewall
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from
from harness.images.base import BaseImage

# Ports no cell uses: a concurrent run is unaffected.
ICMP_PORT, RESET_PORT, NFT_PLAIN_PORT, KIND_PORT = 65010, 65012, 65014, 65016


@pytest.fixture
def caller(client: docker.DockerClient, base_image: BaseImage, run_id: str) -> Iterator[Container]:
    """A container on the default bridge, as the app is in host-gateway mode."""
    c = client.containers.run(base_image.ref, ["sleep", "300"], detach=True, labels=cleanup.labels(run_id, "fw"))
    yield c
    cleanup.remove_container(c)


@contextlib.contextmanager
def listening(*ports: int) -> Iterator[None]:
    """The host listens on these ports, as docker-proxy does for a published port: a refusal or
    an ICMP answer is then the firewall's, never a closed port's. Each test its own ports: the
    engine tests run two at once."""
    servers = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(8)
        servers.append(s)
        threading.Thread(target=lambda s=s: _accept(s), daemon=True).start()
    try:
        yield
    finally:
        for s in servers:
            s.close()


@pytest.fixture
def listening_three() -> Iterator[None]:
    with listening(ICMP_PORT, RESET_PORT, NFT_PLAIN_PORT):
        yield


@pytest.fixture
def listening_kinds() -> Iterator[None]:
    with listening(KIND_PORT):
        yield


def _accept(s: socket.socket) -> None:
    try:
        while True:
            s.accept()[0].close()
    except OSError:
        return


@pytest.fixture
def nft_reset() -> Iterator[None]:
    """A table of its own, as nftables.conf or firewalld make one: reset TCP from docker0 on
    one port, a plain `reject` (an ICMP port unreachable) on another."""
    if shutil.which("nft") is None:
        pytest.fail("nft is not installed: scripts/setup installs nftables")
    script = (f"table inet oh_matrix_test {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n"
              f'  iifname "docker0" tcp dport {RESET_PORT} reject with tcp reset\n'
              f'  iifname "docker0" tcp dport {NFT_PLAIN_PORT} ct state new reject\n }}\n}}\n')
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "oh_matrix_test"], check=False)


def test_rejections_are_seen_as_what_they_are_and_read_from_both_front_ends(
        client: docker.DockerClient, caller: Container, listening_three: None,
        nft_reset: None) -> None:
    gateway = docker_host.bridge_gateway(client)
    assert gateway
    assert probe_from(caller, "app", gateway, ICMP_PORT).tcp == "open"  # the path itself is open
    with firewall.reject_bridge_to_host(str(ICMP_PORT)):
        p = probe_from(caller, "app", gateway, ICMP_PORT)
        assert (p.tcp, p.tcp_ms is not None and p.tcp_ms < 1000) == ("unreachable", True), p
        assert "113" in (p.error or "") or "No route to host" in (p.error or ""), p
        found = firewall.matching(firewall.rules(), "docker0", ICMP_PORT)
        assert [(r.source, r.action, r.reject_with) for r in found] == [("iptables", "reject", "icmp-host-prohibited")]
        with firewall.accept_bridge_to_host(f"{ICMP_PORT}:{ICMP_PORT}", "docker0", found) as done:
            assert probe_from(caller, "app", gateway, ICMP_PORT).tcp == "open"
            assert "iptables -I INPUT -i docker0" in done
    assert probe_from(caller, "app", gateway, ICMP_PORT).tcp == "open"  # both rules gone

    reset = probe_from(caller, "app", gateway, RESET_PORT)
    assert reset.tcp == "refused", reset  # while the host listens: the nft table's reset
    found = firewall.matching(firewall.rules(), "docker0", RESET_PORT)
    assert [(r.source, r.chain, r.resets) for r in found] == [("nft", "inet oh_matrix_test input", True)]
    with firewall.accept_bridge_to_host(f"{RESET_PORT}:{RESET_PORT}", "docker0", found):
        assert probe_from(caller, "app", gateway, RESET_PORT).tcp == "open"
    assert probe_from(caller, "app", gateway, RESET_PORT).tcp == "refused"  # the accept rule deleted
    plain = probe_from(caller, "app", gateway, NFT_PLAIN_PORT)
    assert plain.tcp == "refused", plain  # nft's plain reject: a port unreachable, seen as a refusal
    found = firewall.matching(firewall.rules(), "docker0", NFT_PLAIN_PORT, _address(caller), gateway)
    assert [(r.source, r.reject_with, r.sure) for r in found] == [("nft", "icmp-port-unreachable", True)]
    _judged_at_once(plain, found, "an ICMP port unreachable")
    assert "oh-matrix" not in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def _address(c: Container) -> str:
    c.reload()
    address = address_of(c)
    assert address, c.attrs["NetworkSettings"]
    return address


def _judged_at_once(p: NetProbe, found: list[firewall.Rule], sends: str) -> None:
    """The judge on this look alone, the target not up yet: the rule is named, with its answer."""
    d = Judge().add(Observation(t=1.0, app_status="running", runtime_status="running", app_probe=p,
                                self_probe=NetProbe("runtime", "127.0.0.1", 3000, dns="ok", tcp="refused"),
                                app_rules=found))
    assert d is not None and (d.cause, d.direction) == ("connection-rejected", "app->runtime"), (p, found, d)
    assert f"answers it with {sends}" in d.why and found[0].text in d.why, d.why
    assert "the runtime does not listen on its own port yet" in d.why, d.why


def test_every_iptables_reject_kind_answers_as_read_and_is_named_at_once(
        client: docker.DockerClient, caller: Container, listening_kinds: None) -> None:
    """Each kind of reject (a plain `-j REJECT` first: iptables' default), one at a time on one
    port: what the caller's connect gets is the error the reading expects of that kind, and the
    judge names the rule on that one probe, with what it sends back."""
    gateway = docker_host.bridge_gateway(client)
    assert gateway
    me = _address(caller)
    for kind in (None, *firewall.ANSWERS):
        with firewall.reject_bridge_to_host(str(KIND_PORT), reject_with=kind):
            p = probe_from(caller, "app", gateway, KIND_PORT)
            found = firewall.matching(firewall.rules(), "docker0", KIND_PORT, me, gateway)
        assert [(r.source, r.action, r.sure) for r in found] == [("iptables", "reject", True)], (kind, found)
        rule = found[0]
        assert rule.reject_with == (kind or firewall.DEFAULT_REJECT), (kind, rule)
        if rule.fails_with == errno.ECONNREFUSED:
            assert p.tcp == "refused", (kind, p)
        else:
            assert p.tcp == "unreachable" and f"[Errno {rule.fails_with}]" in (p.error or ""), (kind, p)
        _judged_at_once(p, found, rule.sends)
    assert probe_from(caller, "app", gateway, KIND_PORT).tcp == "open"  # every rule gone
