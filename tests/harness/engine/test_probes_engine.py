"""Probes against real containers: each network outcome is produced by the kernel, not assumed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from harness.host import cleanup
from harness.host.probes import probe_from, proxy_env
from harness.images.base import BaseImage


@pytest.fixture
def pair(client: docker.DockerClient, base_image: BaseImage, run_id: str) -> Iterator[tuple]:
    """A Python HTTP server (alias `srv`, port 8000) and a client on a labelled network."""
    lbl = cleanup.labels(run_id, "probes")
    net = client.networks.create(f"oh-matrix-{run_id[:13]}", labels=lbl)
    server = client.containers.run(base_image.ref, ["python", "-m", "http.server", "8000"], detach=True,
                                   labels=lbl, network=net.name)
    net.disconnect(server)
    net.connect(server, aliases=["srv"])
    probe_client = client.containers.run(base_image.ref, ["sleep", "300"], detach=True, labels=lbl,
                                         network=net.name, environment={"HTTP_PROXY": "http://proxy.invalid:3128"})
    # wait for the server to listen (from its own namespace); a refused probe returns at once, so
    # the wait is a deadline, not a count: on a loaded 2-core CI, python's start took longer than 50 tries
    deadline = time.monotonic() + 60
    while probe_from(server, "srv", "127.0.0.1", 8000, "/").tcp != "open":
        if time.monotonic() > deadline:
            pytest.fail("the probe pair's HTTP server never listened within 60 s")
        time.sleep(0.2)
    yield server, probe_client
    for c in (probe_client, server):
        cleanup.remove_container(c)
    net.remove()


def test_dns_failure(pair: tuple) -> None:
    _, c = pair
    p = probe_from(c, "client", "no-such-host.invalid", 8000)
    assert p.dns == "fail" and p.tcp is None


def test_open_with_http_answer(pair: tuple) -> None:
    _, c = pair
    p = probe_from(c, "client", "srv", 8000, "/")
    assert p.dns == "ok" and p.tcp == "open"
    assert p.http is not None and p.http.startswith("HTTP/1.0 200")
    assert "TCP open" in p.line()


def test_refused_when_nothing_listens(pair: tuple) -> None:
    _, c = pair
    p = probe_from(c, "client", "srv", 8001)
    assert p.tcp == "refused"


def test_timeout_when_syn_is_dropped(pair: tuple) -> None:
    server, c = pair
    server.reload()
    pid = str(server.attrs["State"]["Pid"])
    # A firewall inside the server's own namespace drops SYNs to 8000, as ufw would on a host.
    subprocess.run(["nsenter", "-t", pid, "-n", "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8000",
                    "-j", "DROP"], check=True)
    p = probe_from(c, "client", "srv", 8000, timeout=1.5)
    assert p.tcp == "timeout" and p.tcp_ms is not None and p.tcp_ms >= 1400


def test_proxy_env_is_read_from_the_container(pair: tuple) -> None:
    _, c = pair
    c.reload()
    assert proxy_env(c) == {"HTTP_PROXY": "http://proxy.invalid:3128"}


def test_probe_from_a_container_without_python(client: docker.DockerClient, base_image: BaseImage,
                                               run_id: str) -> None:
    """Images with no interpreter are probed from a helper that joins their namespace."""
    lbl = cleanup.labels(run_id, "no-python")
    bare = client.containers.run(base_image.ref, ["sh", "-c", "rm -f $(command -v python) && sleep 300"],
                                 detach=True, labels=lbl, user="root")
    try:
        deadline = time.monotonic() + 60
        while bare.exec_run(["sh", "-c", "command -v python"]).exit_code == 0:
            assert time.monotonic() < deadline, "python was never removed from the bare container"
            time.sleep(0.1)
        p = probe_from(bare, "bare", "no-such-host.invalid", 80)
        assert p.dns == "fail", p
        p = probe_from(bare, "bare", "127.0.0.1", 9)
        assert p.tcp == "refused", p
        assert not client.containers.list(all=True, filters={"label": f"oh-matrix.probe={bare.name}"})
    finally:
        cleanup.remove_container(bare)
