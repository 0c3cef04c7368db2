"""The real releases on rootful podman's Docker API (#42, item 1), in one run: 0.62 in
host-gateway and host, latest (Agent Canvas 1.20.0) in bridge with its task, on Debian 12's
podman 4.3.1 (`podman system service`) under a temp root of the test's own
(tests/harness/podman.py), the harness pointed at it with DOCKER_HOST and the images
copied in from this machine's daemon (`docker save | docker load`, skipped by image id).

What must hold: the run knows its engine is podman and its version; 0.62 refuses podman
4.3.1 in its own words within seconds in both modes (V0's runtime builder), with the one-line
note that nothing on this podman works for 0.x, and its host-gateway cell names what podman
wrote into the app's /etc/hosts; the harness's own containers (the scripted LLM's sidecar)
work on podman, so latest connects and does its task there; doctor names podman; nothing
is left on the service or in the run registry (the service, its root and its iptables chains
go with the fixture)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import clirun
import docker
import podman
import pytest
import rootless

from harness import images
from harness.model import ImageSet
from harness.paths import cache_root

pytestmark = [pytest.mark.engine, pytest.mark.release]
ROOT = Path(__file__).resolve().parents[2]
CELLS = ("0.62-host-gateway", "0.62-host", "latest-bridge")
MATRIX = clirun.matrix("bridge", "host", "host-gateway", tags=("0.62", "latest"))


@pytest.fixture(scope="module")
def service(client: docker.DockerClient, v0_images: ImageSet, base_image: object) -> Iterator[podman.Podman]:
    canvas = images.prepare(client, "latest", "canvas", "pypi")
    with podman.podman_service() as s:
        podman.load_images(s, *rootless.harness_images(client, v0_images, canvas))
        yield s


def test_0_62_and_latest_on_rootful_podman(service: podman.Podman, tmp_path: Path) -> None:
    (tmp_path / "matrix.toml").write_text(MATRIX)
    out = tmp_path / "run"
    env = {**os.environ, "DOCKER_HOST": service.docker_host, "OH_MATRIX_CACHE": str(cache_root())}
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "matrix.toml"),
                      "--backend", "pypi", "--out", str(out), "-n", "2", *(a for c in CELLS for a in ("--only", c))],
                     cwd=ROOT, timeout=2400, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # 0.62's cells fail
    data = json.loads((out / "results.json").read_text())
    host = data["host"]
    assert host["engine"] == "podman" and host["server_version"].startswith("4.3")
    assert host["docker_host"] == service.docker_host and host.get("userland_proxy") is None
    assert host["bridge_gateway"] == "10.88.0.1"
    cells = {c["id"]: c for c in data["cells"]}
    assert sorted(cells) == sorted(CELLS)
    for cid in ("0.62-host-gateway", "0.62-host"):
        connect = cells[cid]["connect"]
        assert connect["verdict"] == "fail" and connect["cause"] == "runtime-missing", (cid, connect)
        assert connect["seconds"] < 10, connect  # refused at once, no budget waited out
        assert "Podman server version must be >= 4.9.0" in connect["evidence"][0]["text"], connect
        assert any(n.startswith("nothing on this podman works for 0.x") for n in cells[cid]["notes"]), cells[cid]
    hosts = [n for n in cells["0.62-host-gateway"]["notes"] if "into the app's /etc/hosts" in n]
    assert hosts and "`host-gateway host.docker.internal`" in hosts[0], cells["0.62-host-gateway"]["notes"]
    assert not any("/etc/hosts" in n for n in cells["0.62-host"]["notes"])  # the host network adds no entry
    canvas = cells["latest-bridge"]
    assert canvas["connect"]["verdict"] == "pass", canvas["connect"]
    assert [t["verdict"] for t in canvas["tasks"]] == ["pass"], canvas["tasks"]
    summary = (out / "summary.md").read_text()
    assert "Docker API: Podman Engine `4.3" in summary, summary[:1500]
    doctor = clirun.run([sys.executable, "-m", "harness.cli", "doctor"], cwd=ROOT, timeout=120, env=env)
    said = doctor.stdout + doctor.stderr
    assert "Podman Engine 4.3" in said and "not mapped (podman 4.3" in said, said
    # Nothing left on the service, nor in the run registry.
    c = service.client()
    assert c.containers.list(all=True, filters={"label": "oh-matrix.run"}) == []
    assert [n.name for n in c.networks.list() if n.name not in ("bridge", "podman")] == []
    assert not (cache_root() / "runs" / data["run_id"]).exists()
