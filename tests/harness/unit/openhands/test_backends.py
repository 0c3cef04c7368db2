"""The agent-server alone as a backend, without Docker: its generation named by its image,
a matrix of deployments only, its key as its deployment sets it (or none), the server's own
line about where it binds, and the fix a loopback-bound server gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import generations, matrix, remedies
from harness.cells.launch import BOUND
from harness.errors import InputError
from harness.model import CellResult, Connect
from harness.openhands.canvas import AgentServerRules

LINE = "docker run -p 8000:8000 {env}ghcr.io/openhands/agent-server:1.49.1-python"


def test_the_agent_servers_image_names_its_generation() -> None:
    assert generations.for_image("ghcr.io/openhands/agent-server:1.49.1-python") is generations.AGENT_SERVER
    assert generations.for_image("ghcr.io/openhands/agent-canvas:1.20.0") is generations.CANVAS
    assert generations.for_image("docker.openhands.dev/openhands/openhands:0.62") is None
    assert generations.AGENT_SERVER.release_package == "openhands-agent-server"


def test_a_matrix_of_backends_needs_no_targets(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(f'[run]\ntasks = []\n[deployments.as149]\ndocker_run = "{LINE.format(env="")}"\n'
                                     '[callers.canvas]\nurl = "http://host.docker.internal:{port}"\n')
    m = matrix.load(tmp_path / "m.toml")
    assert [(c.id, c.target.api) for c in m.cells()] == [("own-as149", "agent-server-only"),
                                                         ("own-as149-via-canvas", "agent-server-only")]


def test_deployments_without_an_image_of_their_own_still_need_a_target(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(f'[deployments.as149]\ndocker_run = "{LINE.format(env="")}"\nown_image = false\n')
    with pytest.raises(InputError, match=r"targets: expected at least one \[\[targets\]\] table: the deployments"):
        matrix.load(tmp_path / "m.toml")
    (tmp_path / "m.toml").write_text('[modes.bridge]\n')
    with pytest.raises(InputError, match=r"targets: expected at least one \[\[targets\]\] table \(or deployments"):
        matrix.load(tmp_path / "m.toml")


def test_a_target_cannot_name_the_agent_server_by_a_tag(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text('[[targets]]\ntag = "latest"\napi = "agent-server-only"\n[modes.bridge]\n')
    with pytest.raises(InputError, match=r"targets\[0\]\.api: 'agent-server-only': not a target yet: name it by a"):
        matrix.load(tmp_path / "m.toml")


def test_its_key_is_what_its_deployment_sets_or_none_at_all() -> None:
    rules = AgentServerRules(generations.AGENT_SERVER)
    nothing = lambda path: None  # noqa: E731 (it keeps no key in a file)
    assert rules.session_key({}, nothing) == ""  # none set: it asks none
    assert rules.session_key({"SESSION_API_KEY": "k1"}, nothing) == "k1"
    assert rules.session_key({"SESSION_API_KEY": "k1", "OH_SESSION_API_KEYS_0": "k0"}, nothing) == "k0"
    assert rules.runtime_url("", {}, None) == "http://127.0.0.1:8000"


def test_the_servers_own_line_about_where_it_binds_even_wrapped_by_rich() -> None:
    wrapped = ("[12/07/26 15:54:16] INFO     Uvicorn running on                    server.py:234\n"
               "                             http://127.0.0.1:8000 (Press CTRL+C\n")
    assert BOUND.findall(wrapped) == [("Uvicorn running on", "http://127.0.0.1:8000")]
    assert BOUND.findall("Starting OpenHands Agent Server on 0.0.0.0:8000") == [
        ("Starting OpenHands Agent Server on", "0.0.0.0:8000")]
    assert AgentServerRules().failure_log.line("x\nStarting OpenHands Agent Server on 127.0.0.1:8000\n") == \
        "Starting OpenHands Agent Server on 127.0.0.1:8000"  # type: ignore[union-attr]


def test_a_loopback_bound_server_is_given_a_session_key() -> None:
    bound = CellResult(id="own-as149", tag="own-as149", mode="as149", api="agent-server-only",
                       connect=Connect(verdict="fail", cause="loopback-bound"))  # type: ignore[arg-type]
    [(remedy, change)] = remedies.applicable(bound, remedies.Context(gateway="172.17.0.1", deployment=True))
    assert remedy.name == "session-key" and list(change.env) == ["SESSION_API_KEY"]
    assert len(change.env["SESSION_API_KEY"]) >= 24  # a key of the rerun's own, never a fixed one
