"""The agent-server's Docker conversation runtime, without Docker: which apps run one, what
the daemon would create on this machine for its bind mounts and how it is undone, the
container's creation time as the daemon writes it, and the decision's words."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.cells import conversations
from harness.host.netprobe import NetProbe
from harness.model import Cause, Direction, Verdict


def test_the_setting_that_puts_each_conversation_in_a_container() -> None:
    assert conversations.docker_runtime({"OH_CONVERSATION_RUNTIME": "docker"})
    assert conversations.docker_runtime({"OH_CONVERSATION_RUNTIME": " Docker "})
    assert not conversations.docker_runtime({"OH_CONVERSATION_RUNTIME": "local"})
    assert not conversations.docker_runtime({})


def test_what_the_daemon_would_create_is_the_topmost_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    wanted = [str(tmp_path / "home/openhands/.openhands"), str(tmp_path / "projects"), str(tmp_path / "home")]
    assert conversations.roots(wanted) == (str(tmp_path / "home/openhands"), str(tmp_path / "projects"))


def test_only_what_did_not_exist_before_the_cell_is_removed_after_it(tmp_path: Path) -> None:
    mine = tmp_path / "yours"
    mine.mkdir()
    (mine / "keep.txt").write_text("a user's file")
    paths = conversations.HostPaths((str(tmp_path / "made"), str(mine)))
    assert paths.absent == [tmp_path / "made"]
    (tmp_path / "made" / "runtime-data").mkdir(parents=True)  # what the daemon does for a bind mount
    assert paths.created() == [str(tmp_path / "made")]
    paths.remove()
    assert not (tmp_path / "made").exists() and (mine / "keep.txt").read_text() == "a user's file"


def test_the_daemons_creation_time_is_read_with_its_nanoseconds() -> None:
    assert conversations.created_at("2026-12-07T16:07:28.614348421Z") == pytest.approx(1796659648.614348, abs=1e-3)
    assert conversations.created_at("not a time") == 0.0


def container(name: str, network: str = "default") -> Any:
    return SimpleNamespace(name=name, reload=lambda: None, attrs={"HostConfig": {"NetworkMode": network}})


def test_an_outer_server_in_a_container_dialling_127_0_0_1_is_its_own_loopback() -> None:
    seen = conversations.Seen(container("agent-server-conversation-1"), 32779, "127.0.0.1")
    dialled = NetProbe(where="the app (where its agent-server runs)", host="127.0.0.1", port=32779, dns="ok",
                       addresses=["127.0.0.1"], tcp="refused", tcp_ms=0)
    inside = NetProbe(where="the conversation container (its own port, inside)", host="127.0.0.1", port=8000,
                      dns="ok", addresses=["127.0.0.1"], tcp="open", tcp_ms=0, http="HTTP/1.1 200 OK")
    d = conversations.own_loopback(container("oh-matrix-x-app"), seen, dialled, inside)
    assert (d.verdict, d.cause, d.direction) == (Verdict.FAIL, Cause.OWN_LOOPBACK, Direction.FORWARD)
    assert "published on 127.0.0.1:32779 (`-p 127.0.0.1::8000`, the host's loopback)" in d.why
    assert "reaches it at http://127.0.0.1:32779" in d.why and "off the host network" in d.why
    assert "127.0.0.1:32779 -> 127.0.0.1 TCP refused" in d.why and "HTTP 'HTTP/1.1 200 OK'" in d.why


def test_a_docker_cli_missing_from_the_image_is_said_in_the_servers_own_words() -> None:
    from harness.cells.messages import no_docker
    from harness.openhands import docker_failure

    # the agent-server logs JSON: the traceback is one line of kilobytes, its last words the error
    logged = ('{"levelname": "ERROR", "message": "Traceback (most recent call last):\\n' + "  File ...\\n" * 200
              + "FileNotFoundError: [Errno 2] No such file or directory: 'docker'\"}\n")
    line = docker_failure(logged)
    assert line == "FileNotFoundError: [Errno 2] No such file or directory: 'docker'"
    said = no_docker(line, "the socket /var/run/docker.sock mounted at /var/run/docker.sock")
    assert said.startswith("the app cannot start its runtime: it runs the `docker` CLI to start it, and its "
                           "container has none (the image ships no docker CLI)")


def test_a_conversation_containers_last_words_are_its_errors() -> None:
    seen = conversations.Seen(container("agent-server-conversation-1"), 1, "127.0.0.1")
    seen.said = ("INFO starting\nPermissionError: [Errno 13] Permission denied: '/var/openhands/.openhands/x'\n"
                 "INFO bye\n")
    assert seen.last_words() == "PermissionError: [Errno 13] Permission denied: '/var/openhands/.openhands/x'"
    seen.said = "INFO a\nINFO b\n"
    assert seen.last_words() == "INFO a | INFO b"


def test_mounts_the_daemon_made_from_the_outer_servers_own_paths_are_own_paths(tmp_path: Path) -> None:
    made = tmp_path / "projects"
    made.mkdir(mode=0o755)
    seen = conversations.Seen(container("agent-server-conversation-1"), 1, "127.0.0.1",
                              mounts=(f"{made}:/workspace",), user="10001:10001")
    seen.said = "INFO starting\nPermissionError: [Errno 13] Permission denied: '/workspace/x'\n"
    d = conversations.own_paths(seen, [str(made)])
    assert d is not None and (d.verdict, d.cause, d.direction) == (Verdict.FAIL, Cause.OWN_PATHS, Direction.FORWARD)
    assert f"{made}:/workspace" in d.why and f"{made} (uid {made.stat().st_uid}, mode 755)" in d.why
    assert "runs as 10001:10001" in d.why and "Permission denied: '/workspace/x'" in d.why
    # no path made here, or another error: not this
    assert conversations.own_paths(seen, []) is None
    seen.said = "ValueError: bad settings\n"
    assert conversations.own_paths(seen, [str(made)]) is None
