"""The agent-server as people run it today, for real, in one run: alone as a backend
(`docker run -p 8000:8000 ghcr.io/openhands/agent-server:1.49.1-python`, without and with a
session key) and inside Agent Canvas with its Docker conversation runtime (the documented
image, which has no docker CLI; and an image of the user's own with one). Each failing cell
is decided in seconds by its mechanism, and nothing is left on the daemon or the host."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import clirun
import docker
import pytest

from harness import images
from harness.host import cleanup

ROOT = Path(__file__).resolve().parents[3]
SOCKET = "/var/run/docker.sock"
DOCKER_RUNTIME = ("-v /var/run/docker.sock:/var/run/docker.sock -e OH_CONVERSATION_RUNTIME=docker "
                  "-e OH_CONVERSATION_IMAGE=ghcr.io/openhands/agent-server:1.49.1-python")
CELLS = ["own-as149", "own-as149-key", "latest-canvas-docker", "own-cli-bridge"]


@pytest.fixture(scope="module")
def canvas_with_cli(client: docker.DockerClient) -> Iterator[str]:
    """Agent Canvas's image with the docker CLI added, as a user builds one: the only way its
    Docker runtime can start a container from inside it."""
    if not os.path.exists(SOCKET) or not shutil.which("docker"):
        pytest.skip("needs this machine's Docker socket and a docker CLI to copy into the image")
    base = images.prepare(client, "latest", "canvas", "pypi").app_image  # also builds agent-server 1.49.1's image
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM {base}\nCOPY docker /usr/local/bin/docker\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(shutil.which("docker") or "", arcname="docker")
    context.seek(0)
    ref = f"oh-matrix-test/canvas-docker-cli-{uuid.uuid4().hex[:8]}:1.20.0"
    client.images.build(fileobj=context, custom_context=True, tag=ref, rm=True, network_mode="none",
                        labels={cleanup.OWNER_LABEL: cleanup.owner()})
    yield ref
    client.images.remove(ref, force=True)


def test_backends_and_the_docker_conversation_runtime_as_people_run_them(
        client: docker.DockerClient, canvas_with_cli: str, tmp_path: Path) -> None:
    gid = os.stat(SOCKET).st_gid
    before = {p: os.path.lexists(p) for p in ("/home/openhands", "/projects")}
    (tmp_path / "m.toml").write_text(f"""
[run]
tasks = ["create-file"]
[[targets]]
tag = "latest"
[deployments.as149]
docker_run = "docker run -p 8000:8000 ghcr.io/openhands/agent-server:1.49.1-python"
[deployments.as149-key]
docker_run = "docker run -p 8000:8000 -e SESSION_API_KEY=backend-key-1 ghcr.io/openhands/agent-server:1.49.1-python"
[deployments.canvas-docker]
docker_run = "docker run -p 8000:8000 {DOCKER_RUNTIME} ghcr.io/openhands/agent-canvas:1.20.0"
own_image = false
[deployments.cli-bridge]
docker_run = "docker run -p 8000:8000 --group-add {gid} {DOCKER_RUNTIME} {canvas_with_cli}"
api = "canvas"
""")
    out = tmp_path / "run"
    only = [arg for cell in CELLS for arg in ("--only", cell)]
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--backend", "pypi", "--remedies", "--remedy", "session-key", "--remedy", "outer-on-host", *only,
                      "--out", str(out)],
                     cwd=ROOT, timeout=1500)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # three cells fail, as they must
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert sorted(cells) == sorted(CELLS)

    # a backend without a key: it binds its container's loopback, said by its own line, fixed by a key
    bound = cells["own-as149"]
    assert bound["api"] == "agent-server-only" and bound["resolved_version"] == "1.49.1"
    assert (bound["connect"]["verdict"], bound["connect"]["cause"]) == ("fail", "loopback-bound"), bound["connect"]
    why = bound["connect"]["evidence"][0]["text"]
    assert "refuses at its own address" in why and "Uvicorn running on http://127.0.0.1:8000" in why, why
    [key] = bound["remedies"]
    assert (key["name"], key["verdict"]) == ("session-key", "pass"), key
    assert "-e SESSION_API_KEY" in key["fix"]
    keyed = cells["own-as149-key"]
    assert keyed["connect"]["verdict"] == "pass", keyed["connect"]
    assert [(t["name"], t["verdict"]) for t in keyed["tasks"]] == [("create-file", "pass")]

    # the documented Canvas image with the socket and the Docker runtime: no docker CLI in it
    nocli = cells["latest-canvas-docker"]["connect"]
    assert (nocli["verdict"], nocli["cause"]) == ("fail", "docker-unreachable"), nocli
    assert "runs the `docker` CLI to start it, and its container has none" in nocli["evidence"][0]["text"]
    assert nocli["evidence"][1] == {"source": "app-log",
                                    "text": "FileNotFoundError: [Errno 2] No such file or directory: 'docker'"}

    # with a CLI, on the default bridge: the agent-server dials its own loopback for its conversation
    own = cells["own-cli-bridge"]
    c = own["connect"]
    assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "own-loopback", "app->runtime"), c
    assert c["seconds"] < 60, c  # the release itself waits 120 s, then answers nothing
    assert "TCP refused" in c["evidence"][0]["text"] and "HTTP 'HTTP/1.1 200" in c["evidence"][0]["text"]
    assert own["runtime_container"].startswith("agent-server-conversation-")
    # fixed by the host's network with the folders at their own paths: the rerun's conversation connects
    [moved] = own["remedies"]
    assert (moved["name"], moved["verdict"], moved["network_mode"]) == ("outer-on-host", "pass", "host"), moved
    assert moved["volumes"] == ["/home/openhands/.openhands:/home/openhands/.openhands", "/projects:/projects"]
    assert any("created" in n and "removed after the cell" in n for n in own["notes"]) or all(before.values())

    # nothing left: the conversation containers, the cells' own, the folders the daemon made here
    assert client.containers.list(all=True, filters={"name": "agent-server-conversation-"}) == []
    assert client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={results['run_id']}"}) == []
    assert {p: os.path.lexists(p) for p in before} == before
