"""Docker-workspace callers without Docker: their `[callers.NAME]` tables and cells, the line
a person runs and its fixes' diffs, the docker CLI wrapper that stands in for a daemon with a
higher open-files limit (run here by sh against a stand-in CLI), the lines the person's code
prints, and what DockerWorkspace's own errors are taken to mean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import matrix
from harness.cells import workspace as cell
from harness.cells.workspace import Script, sdk_decision
from harness.errors import InputError
from harness.images.workspace import CLAMP, CLI, WRAPPER
from harness.matrix import Caller
from harness.model import Cause, Direction, Verdict
from harness.remedies import callers as fixes

BASE = '[run]\ntasks = []\n[[targets]]\ntag = "latest"\n[[targets]]\ntag = "0.62"\n[modes.host-gateway]\n'
SERVER = "ghcr.io/openhands/agent-server:1.49.1-python"
REFUSED = ("Failed to run docker container: docker: Error response from daemon: failed to create shim task: OCI "
           "runtime create failed: runc create failed: unable to start container process: error during container "
           "init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted")


def load(text: str, tmp_path: Path) -> matrix.Matrix:
    (tmp_path / "m.toml").write_text(BASE + text)
    return matrix.load(tmp_path / "m.toml")


def test_a_workspace_caller_is_one_cell_per_canvas_target_named_by_its_network(tmp_path: Path) -> None:
    m = load('[callers.ci]\ndrives = "docker-workspace"\n[callers.job]\ndrives = "docker-workspace"\n'
             'network = "host"\nhost = "http://localhost:{port}"\n', tmp_path)
    cells = {c.id: c for c in m.cells()}
    # no app cell per mode for them, and none for the app server's 0.62 (no DockerWorkspace there)
    assert list(cells) == ["latest-host-gateway", "0.62-host-gateway", "latest-bridge-via-ci", "latest-host-via-job"]
    ci = cells["latest-bridge-via-ci"]
    assert ci.entrypoint == "workspace" and ci.mode.name == "bridge"
    assert ci.caller == Caller("ci", "bridge", matrix.WORKSPACE_URL, drives="docker-workspace")
    job = cells["latest-host-via-job"].caller
    assert job is not None and job.url_for(port=8010, app="", app_port=8000) == "http://localhost:8010"


@pytest.mark.parametrize(("table", "error"), [
    ('[callers.ci]\ndrives = "sdk"\n', r"callers\.ci\.drives: expected one of api, docker-workspace"),
    ('[callers.ci]\ndrives = "docker-workspace"\nurl = "http://x"\n', r"callers\.ci\.url: unknown key"),
    ('[callers.ci]\ndrives = "docker-workspace"\nnetwork = "app"\n',
     r"callers\.ci\.network: expected one of bridge, host"),
    ('[callers.ci]\ndrives = "docker-workspace"\nhost = "x:1"\n', r"callers\.ci\.host: expected \"\" or an http://"),
    ('[callers.ci]\ndrives = "docker-workspace"\nhost = "http://{app}:8000"\n',
     r"callers\.ci\.host: \{app\}: a DockerWorkspace's host may name \{port\} only"),
])
def test_a_bad_workspace_caller_is_one_line_naming_its_key(tmp_path: Path, table: str, error: str) -> None:
    with pytest.raises(InputError, match=error):
        load(table, tmp_path)


def test_the_person_line_and_each_fix_as_a_diff_of_it() -> None:
    ci = Caller("ci", "bridge", matrix.WORKSPACE_URL, env={"GITHUB_TOKEN": "ghp_x"}, drives="docker-workspace")
    line = fixes.workspace_run(ci, SERVER, frozenset({"GITHUB_TOKEN"}))
    assert line.splitlines() == ["docker run -d \\", "  --network bridge \\", "  -e 'GITHUB_TOKEN=$GITHUB_TOKEN' \\",
                                 "  -v /var/run/docker.sock:/var/run/docker.sock \\", "  CALLER_IMAGE",
                                 f"DockerWorkspace(server_image='{SERVER}')"]
    found = {f.name: f for f in fixes.applicable(ci, Cause.OWN_LOOPBACK, "bridge")}
    assert list(found) == ["caller-host-gateway", "caller-host-network"]
    gateway = fixes.diff(line, fixes.workspace_run(found["caller-host-gateway"].caller, SERVER))
    assert "+--add-host host.docker.internal:host-gateway" in gateway
    assert (f"+DockerWorkspace(server_image='{SERVER}', host_port=PORT, host='http://host.docker.internal:PORT')"
            in gateway)
    # on the host's network the SDK's own 127.0.0.1 is this machine's: its call stays as it is
    host = fixes.diff(line, fixes.workspace_run(found["caller-host-network"].caller, SERVER))
    assert "+--network host" in host and "DockerWorkspace" not in "".join(
        x for x in host.splitlines() if x[:1] in "+-" and not x.startswith(("+++", "---")))


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    """The image's docker wrapper, in front of a stand-in CLI that prints its arguments."""
    real = tmp_path / "docker-real"
    real.write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    real.chmod(0o755)
    script = tmp_path / "docker"
    script.write_text(WRAPPER.replace(CLI, str(real)))
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(("clamp", "ulimit"), [(None, "nofile=65536:65536"), ("20000", "nofile=20000:20000")])
def test_the_docker_wrapper_lowers_the_open_files_ask_only_when_told(wrapper: Path, clamp: str | None,
                                                                     ulimit: str) -> None:
    args = ["run", "-d", "--ulimit", "nofile=65536:65536", "--name", "agent-server-1 x", "-p", "8010:8000", "img"]
    env = {"PATH": "/usr/bin:/bin", **({CLAMP: clamp} if clamp else {})}
    out = subprocess.run([str(wrapper), *args], capture_output=True, text=True, env=env, check=True).stdout
    assert cell.CLAMP == CLAMP  # what the cell sets is what the image's wrapper reads
    assert out.splitlines() == [f"[{a}]" for a in args[:3]] + [f"[{ulimit}]"] + [f"[{a}]" for a in args[4:]]


def test_the_script_lines_are_events_among_the_sdks_own_output() -> None:
    script = Script(container=None)  # type: ignore[arg-type]
    for line in ["[DOCKER] Starting OpenHands Agent Server on 0.0.0.0:8000",
                 'OH-MATRIX {"event": "ready", "host": "http://127.0.0.1:8010", "seconds": 9.1}', ""]:
        script._line(line)
    assert script.event("ready") == {"event": "ready", "host": "http://127.0.0.1:8010", "seconds": 9.1}
    assert script.event("error") is None
    assert script.said() == "[DOCKER] Starting OpenHands Agent Server on 0.0.0.0:8000"


@pytest.mark.parametrize(("message", "started", "cause", "direction"), [
    (REFUSED, False, Cause.RUNTIME_MISSING, None),
    ("Docker is not available. Please install and start Docker Desktop/daemon.", False, Cause.DOCKER_UNREACHABLE,
     Direction.CALLER),
    ("Container stopped unexpectedly. Logs:\nTraceback ...", True, Cause.AGENT_SERVER_EXITED, None),
    ("Failed to run docker container: docker: Error response from daemon: No such image: x", False,
     Cause.RUNTIME_MISSING, None),
    ("Port 8010 is not available", False, Cause.API_ERROR, Direction.CALLER),
])
def test_what_dockerworkspace_said_is_taken_for_its_mechanism(message: str, started: bool, cause: Cause,
                                                              direction: Direction | None) -> None:
    d = sdk_decision("RuntimeError", message, started, 20000)
    assert (d.verdict, d.cause, d.direction) == (Verdict.FAIL, cause, direction)
    assert message[:60] in d.why
    if cause == Cause.RUNTIME_MISSING and "rlimit" in message:
        assert "hard limit of open files is 20000" in d.why and "--ulimit nofile=65536:65536" in d.why
