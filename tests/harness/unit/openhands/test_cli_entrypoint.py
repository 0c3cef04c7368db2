"""The `cli` entry point's parts that need no daemon: which CLI release a target pairs with
(data, with PyPI's upload times), which CLI releases can run headless from the environment,
the command and settings an automation gives it, and how its persisted events are read back."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from harness import matrix
from harness.images import cli
from harness.openhands import LlmSettings
from harness.openhands import cli as cell


def test_a_release_pairs_with_the_newest_cli_published_before_it() -> None:
    p = cli.paired("1.11.0")
    assert p.cli == "1.16.0" and "2026-05-08 before 2026-07-09" in p.why and "cli_pairs.toml" in p.why
    assert cli.paired("0.62.0").cli == "1.0.6"
    newer = cli.paired("9.0.0", listed=["1.15.0", "1.16.0", "1.17.0"])
    assert newer.cli == "1.17.0" and "newer than harness/images/cli_pairs.toml" in newer.why


@pytest.mark.parametrize(("version", "runs"), [("1.16.0", True), ("1.11.0", True), ("1.10.0", False),
                                               ("1.5.0", False), ("1.0.7", False)])
def test_only_a_cli_that_builds_its_agent_from_the_environment_runs_headless(version: str, runs: bool) -> None:
    lack = cell.headless_lack(version)
    assert (lack is None) == runs
    if lack:
        assert "--headless first ships in openhands 1.5.0" in lack and "--override-with-envs in 1.10.0" in lack


def test_the_cli_is_run_as_an_automation_runs_it_and_calls_nothing_off_the_machine() -> None:
    assert cell.command("do it") == ["openhands", "--headless", "--override-with-envs", "-t", "do it"]
    env = cell.cli_env(LlmSettings(model="openai/m", api_key="k", base_url="http://127.0.0.1:5000/v1"))
    assert (env["LLM_MODEL"], env["LLM_API_KEY"], env["LLM_BASE_URL"]) == ("openai/m", "k", "http://127.0.0.1:5000/v1")
    own = cell.harness_env()  # on the container, not in the line a person runs
    assert own["HTTPS_PROXY"] == own["https_proxy"] == "http://127.0.0.1:9"  # PyPI's and GitHub's calls go nowhere
    assert "127.0.0.1" in own["NO_PROXY"].split(",")  # ... but the LLM on the loopback is reached


def test_a_matrix_names_the_cli_entry_point() -> None:
    m = matrix.parse({"run": {"tasks": [], "entrypoints": ["api", "cli"]}, "targets": [{"tag": "latest"}],
                      "modes": {"bridge": {}}}, "m.toml")
    assert [c.id for c in m.cells()] == ["latest-bridge", "latest-bridge-cli"]


def archive(files: dict[str, Any]) -> bytes:
    """The CLI's conversations folder as docker's get_archive gives it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in files.items():
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_persisted_events_are_read_in_their_order_with_the_status() -> None:
    conv = "oh-matrix-conversations/5f0c"
    tar = archive({f"{conv}/events/event-00001-bbbbbbbb.json": {"kind": "ActionEvent", "n": 1},
                   f"{conv}/events/event-00000-aaaaaaaa.json": {"kind": "MessageEvent", "n": 0},
                   f"{conv}/base_state.json": {"execution_status": "finished"}})
    events, state = cell.read_conversation(tar)
    assert [e["n"] for e in events] == [0, 1] and state == "finished"


def test_a_run_of_cli_cells_only_recommends_no_deployment_and_says_why() -> None:
    from harness.model import CellResult, Connect
    from harness.results.recommend import recommend

    cell = CellResult(id="latest-bridge-cli", tag="latest", mode="bridge", api="v1", entrypoint="cli",
                      connect=Connect(verdict="pass"))
    r = recommend([cell])
    assert r.cell is None and r.why == "no app server was run: the cli cells prove an entry point, not a deployment"
