"""The real releases on a remote daemon (#25, item 2), in one run: 0.62 and latest in
host-gateway with a task and 0.62 in bridge with `--remedies` (V0's DOCKER_HOST_ADDR fix alone, for
CI's minutes), on a second dockerd listening on TCP inside a network namespace of
the test's own (tests/harness/remotedaemon.py), the harness pointed at it with DOCKER_HOST.

What must hold: the app is told the daemon's endpoint (no socket of this machine's mounted
there) and reached where the daemon publishes it, at the daemon's host; both cells connect
and do their task there; the run records a remote daemon and says what it did not read on
this machine in its place (firewall, userland proxy, load); the fix is the daemon's own
gateway, proven by a rerun that keeps DOCKER_HOST; `doctor` says the same; nothing is left
on the daemon or in the run registry."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import clirun
import docker
import pytest
import remotedaemon
import rootless

from harness.model import ImageSet
from harness.paths import cache_root

ROOT = Path(__file__).resolve().parents[3]
CELLS = ("0.62-bridge", "0.62-host-gateway", "1.11-host-gateway")  # 1.11's bridge fails as 0.62's
MATRIX = clirun.matrix("bridge", "host-gateway")


@pytest.fixture(scope="module")
def daemon(client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
           base_image: object) -> Iterator[remotedaemon.RemoteDaemon]:
    images = rootless.harness_images(client, v0_images, v1_images)
    with remotedaemon.tcp_daemon() as d:
        rootless.load_images(f"unix://{d.socket}", *images)
        yield d


def test_0_62_and_1_11_on_a_tcp_daemon_in_its_own_namespace(daemon: remotedaemon.RemoteDaemon,
                                                              tmp_path: Path) -> None:
    (tmp_path / "matrix.toml").write_text(MATRIX)
    out = tmp_path / "run"
    env = {**os.environ, "DOCKER_HOST": daemon.docker_host, "OH_MATRIX_CACHE": str(cache_root())}
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "matrix.toml"),
                      "--backend", "pypi", "--remedies", "--remedy", "docker-host-addr", "--out", str(out), "-n", "2",
                      *(a for c in CELLS for a in ("--only", c))],
                     cwd=ROOT, timeout=1200, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # the bridge cells fail
    data = json.loads((out / "results.json").read_text())
    host = data["host"]
    assert host["remote"] is True and host["docker_host"] == daemon.docker_host
    assert host.get("firewall") is None and host.get("userland_proxy") is None  # this machine's: not read
    gateway = remotedaemon.BRIDGE.split("/")[0]
    assert host["bridge_gateway"] == gateway  # the daemon's own docker0, read from it
    cells = {c["id"]: c for c in data["cells"]}
    assert sorted(cells) == sorted(CELLS)
    for tag in ("0.62", "1.11"):
        c = cells[f"{tag}-host-gateway"]
        assert c["connect"]["verdict"] == "pass", c["connect"]
        assert [t["verdict"] for t in c["tasks"]] == ["pass"], c["tasks"]
        assert f"-e DOCKER_HOST={daemon.docker_host}" in c["docker_run"], c["docker_run"]
        assert "docker.sock" not in c["docker_run"], c["docker_run"]
        assert c["boot"]["remote"] is True and not c["boot"].get("load"), c["boot"]
        assert any(remotedaemon.THERE in n and "every address of the daemon's host" in n
                   for n in c["notes"]) or tag == "1.11", c["notes"]  # 1.x publishes on every address anyway
    assert cells["0.62-bridge"]["connect"]["cause"] == "dns-unresolved", cells["0.62-bridge"]["connect"]
    [fix] = cells["0.62-bridge"]["remedies"]
    assert fix["name"] == "docker-host-addr" and fix["verdict"] == "pass", fix
    assert fix["env"] == {"DOCKER_HOST_ADDR": gateway} and f"-e DOCKER_HOST={daemon.docker_host}" in fix["docker_run"]
    summary = (out / "summary.md").read_text()
    assert "not read" in summary and "remote daemon" in summary
    doctor = clirun.run([sys.executable, "-m", "harness.cli", "doctor"], cwd=ROOT, timeout=120, env=env)
    assert "not read: remote daemon" in doctor.stdout + doctor.stderr, doctor.stdout + doctor.stderr
    # Nothing left on the daemon, nor in the run registry.
    c = daemon.client()
    assert c.containers.list(all=True) == []
    assert c.networks.list(filters={"label": "oh-matrix.run"}) == []
    assert not (cache_root() / "runs" / data["run_id"]).exists()
