"""The official backend against a mirror: a real registry server (distribution's
`docker-registry`, Debian's package; noxfile.py fetches its binary) on loopback holds the
PyPI-built 0.62 and 1.11 images under the official names, and `--backend official` with
OH_MATRIX_REGISTRY pulls them from it: the app, the V0 runtime, the agent-server the 1.x
app names (looked up in the pulled app image), one cell each, with their tasks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import clirun
import docker
import httpx
import pytest

from harness.host.containers import free_port
from harness.images import official, pulled
from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]
CONFIG = """version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


def registry_binary() -> str:
    found = os.environ.get("OH_MATRIX_REGISTRY_BIN") or shutil.which("docker-registry")
    assert found, "no docker-registry binary: nox -s release fetches Debian's (apt-get download docker-registry)"
    return found


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A registry on 127.0.0.1 (the daemon trusts loopback registries without TLS): its
    address and its log file."""
    port = free_port()
    storage = tmp_path / "storage"
    (tmp_path / "config.yml").write_text(CONFIG.format(root=storage, port=port))
    log = tmp_path / "registry.log"
    with log.open("w") as out:
        proc = subprocess.Popen([registry_binary(), "serve", str(tmp_path / "config.yml")], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        yield f"127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(storage, ignore_errors=True)  # gigabytes of layers: not kept by pytest's tmp retention


MATRIX = clirun.matrix("host-gateway")


def push(client: docker.DockerClient, image: str, ref: str) -> None:
    """`image` pushed as `ref`, then the local name `ref` removed, so the backend must pull it."""
    repo, _, tag = ref.rpartition(":")
    assert client.images.get(image).tag(repo, tag)
    for event in client.api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in event, event
    client.images.remove(ref)


def test_official_backend_from_a_mirror(client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
                                        mirror: tuple[str, Path], tmp_path: Path) -> None:
    address, log = mirror
    ns = f"{address}/openhands"
    agent_version = v1_images.runtime_image.rpartition(":")[2]  # e.g. 1.34.0-python
    refs = {v0_images.app_image: f"{ns}/openhands:0.62",
            v0_images.runtime_image: f"{ns}/runtime:0.62-nikolaik",
            v1_images.app_image: f"{ns}/openhands:1.11",
            v1_images.runtime_image: f"{ns}/agent-server:{agent_version}"}
    t0 = time.monotonic()
    for image, ref in refs.items():
        push(client, image, ref)
    pushed_in = time.monotonic() - t0
    env = {**os.environ, "OH_MATRIX_REGISTRY": ns}
    try:
        (tmp_path / "m.toml").write_text(MATRIX)  # one task: the pulled images run an agent's work
        run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                          "--backend", "official", "--out", str(tmp_path / "run"), "-n", "2"],
                         cwd=ROOT, timeout=1500, env=env)
        listed = clirun.run([sys.executable, "-m", "harness.cli", "images", "list"], cwd=ROOT, timeout=120, env=env)
    finally:
        for ref in refs.values():  # the mirror's names go; the pypi backend's images stay cached
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref)
            pulled.keep(ref, [])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}
    for cid in ("0.62-host-gateway", "1.11-host-gateway"):
        c = cells[cid]
        assert (c["connect"]["verdict"], c["backend"]) == ("pass", "official"), c["connect"]
        assert c["tasks"] and all(t["verdict"] == "pass" for t in c["tasks"]), c["tasks"]
    assert cells["0.62-host-gateway"]["app_image"] == f"{ns}/openhands:0.62"
    assert f"SANDBOX_RUNTIME_CONTAINER_IMAGE={ns}/runtime:0.62-nikolaik" in cells["0.62-host-gateway"]["docker_run"]
    v1 = cells["1.11-host-gateway"]
    assert v1["runtime_image"] == f"{ns}/agent-server:{agent_version}"
    assert f"{official.AGENT_SERVER_ENV}={ns}/agent-server" in v1["docker_run"]  # the app told where its sandbox is
    assert f"{official.AGENT_SERVER_ENV}={ns}/agent-server" in data["recommendation"]["docker_run"]
    notes = data["images"]["1.11"]["notes"]
    assert f"pulled from {ns}" in notes and f"agent-server {agent_version.removesuffix('-python')} from " \
        f"{ns}/agent-server" in notes, notes
    # the registry's own account: every image was pulled from it
    served = log.read_text()
    for ref in refs.values():
        repo, _, tag = ref.removeprefix(f"{address}/").rpartition(":")
        assert f"/v2/{repo}/manifests/{tag} HTTP" in served, (ref, served[-3000:])  # HEAD or GET by tag
    for ref in refs.values():  # images list names what it pulled
        assert ref in listed.stdout, listed.stdout
    print(f"pushed 4 images in {pushed_in:.0f} s")
