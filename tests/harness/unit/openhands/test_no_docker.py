"""An app given no Docker daemon (a user's line without the socket): the cause is that, in
one look, in the app's own words, and the fix is the socket mount added to the user's line,
which the remedies' rerun proves (the rerun itself: test_release_deployments.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import deployments, remedies
from harness.cells.diagnosis import Decision, Judge, Observation, unmasked
from harness.deployments.fixes import fix
from harness.model import Cause, CellResult, Connect, Verdict
from harness.openhands import docker_failure

# What 0.62's headless process prints with no socket (docker_runtime.py _init_docker_client,
# then docker-py's from_env), shortened.
LOG = """\
19:02:11 - openhands:INFO: main.py:88 - Initializing runtime: DockerRuntime
19:02:11 - openhands:ERROR: docker_runtime.py:195 - Launch docker client failed. Please make sure you have \
installed docker and started docker desktop/daemon.
Traceback (most recent call last):
  File "/app/.venv/lib/python3.12/site-packages/docker/api/client.py", line 223, in _retrieve_server_version
docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.', \
FileNotFoundError(2, 'No such file or directory'))
"""
LINE = "docker run --rm -e LLM_API_KEY=sk-x -e LLM_MODEL=m img:0.62 python -m openhands.core.main -t 'Create a file'"


def test_the_apps_own_lines_are_found() -> None:
    found = docker_failure(LOG)
    assert found is not None and found.startswith("19:02:11 - openhands:ERROR: docker_runtime.py:195 - Launch docker")
    assert found.endswith("FileNotFoundError(2, 'No such file or directory'))")
    assert docker_failure("19:02:11 - openhands:INFO: Runtime is ready.") is None


def test_a_process_that_exits_without_docker_is_that_in_one_look() -> None:
    o = Observation(t=2, app_status="exited", app_exit=1, runtime_status="absent", docker_failure=docker_failure(LOG))
    d = Judge(daemon=None).add(o)
    assert d is not None and (d.verdict, d.cause) == (Verdict.FAIL, Cause.DOCKER_UNREACHABLE)
    assert "given no Docker daemon (no socket mounted at /var/run/docker.sock, no DOCKER_HOST)" in d.why
    assert "Launch docker client failed" in d.why
    given = Judge(daemon="the socket /var/run/docker.sock mounted at /var/run/docker.sock").add(o)
    assert given is not None and "cannot reach the Docker daemon it was given (the socket" in given.why


def test_a_failure_the_apps_docker_error_explains_is_decided_as_that() -> None:
    exited = Decision(Verdict.FAIL, Cause.APP_EXITED, "app container exited with exit code 1 before its API answered")
    assert unmasked(exited, docker_failure(LOG), None).cause == Cause.DOCKER_UNREACHABLE
    assert unmasked(exited, None, None) is exited  # no such line: as decided
    refused = Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED, "refused")
    assert unmasked(refused, docker_failure(LOG), None) is refused  # a network cause is proven otherwise


def failed(api: str = "v0") -> CellResult:
    return CellResult(id="0.62-job-headless", tag="0.62", mode="job", api=api,
                      connect=Connect(verdict=Verdict.FAIL, cause=Cause.DOCKER_UNREACHABLE))


@pytest.mark.parametrize("api", ["v0", "v1"])
def test_the_fix_is_the_socket_mount_and_only_for_a_line_without_one(api: str) -> None:
    bare = remedies.Context(gateway="172.17.0.1", deployment=True, mounts_socket=False)
    [(remedy, change)] = remedies.applicable(failed(api), bare)
    assert remedy.name == "mount-docker-socket" and change.volumes == ("/var/run/docker.sock:/var/run/docker.sock",)
    mounted = remedies.Context(gateway="172.17.0.1", deployment=True, mounts_socket=True)
    assert remedies.applicable(failed(api), mounted) == []  # a socket it cannot use: no mount to add
    assert remedies.applicable(failed(api), remedies.Context(gateway="172.17.0.1")) == []  # built-in modes have one


def test_the_fix_is_the_users_line_with_the_mount_added(tmp_path: Path) -> None:
    d = deployments.load("job", {"docker_run": LINE}, str(tmp_path / "m.toml"), None)
    assert not d.service.mounts_socket() and d.entrypoint == "headless"
    line = fix(d, {}, volumes=["/var/run/docker.sock:/var/run/docker.sock"])
    assert line == ("docker run -v /var/run/docker.sock:/var/run/docker.sock --rm -e LLM_API_KEY=sk-x -e LLM_MODEL=m "
                    "img:0.62 python -m openhands.core.main -t 'Create a file'")
    assert d.changed({}, volumes=("/var/run/docker.sock:/var/run/docker.sock",)).service.mounts_socket()
    (tmp_path / "compose.yml").write_text("services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                          "    volumes:\n      - ~/.openhands:/.openhands\n")
    c = deployments.load("c", {"compose": "compose.yml"}, str(tmp_path / "m.toml"), None)
    diff = fix(c, {}, volumes=["/var/run/docker.sock:/var/run/docker.sock"])
    assert "       - ~/.openhands:/.openhands\n+      - /var/run/docker.sock:/var/run/docker.sock\n" in diff
