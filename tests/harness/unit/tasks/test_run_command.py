"""run-command's verdict is the cell's, whatever the machine's load: 0.62's bash session can
answer a quick command before it has read its output (its pane still ends with the previous
prompt), so the agent sees nothing while the command runs. The events of a real 0.62 run
that did so (tests/harness/data/v0-run-command-unread.json) prove it; the file says the
command ran, and the lost output is the release's finding, not a flip of the task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.openhands.v0 import turn_from_events
from harness.tasks import CATALOG, Where

DATA = json.loads((Path(__file__).resolve().parents[2] / "data" / "v0-run-command-unread.json").read_text())
NONCE = "55c2b983bb"


class Runtime:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def exec_run(self, cmd: list[str], user: str = "", demux: bool = False,
                 environment: dict[str, str] | None = None) -> Any:
        if cmd[:1] == ["cat"] and cmd[1] in self.files:
            return 0, self.files[cmd[1]].encode()
        return 1, b"cat: no such file"


def test_the_recalls_null_observation_is_no_output_and_the_unread_run_is_named() -> None:
    turn = turn_from_events(DATA["events"], f"run-command {NONCE}")
    assert turn.done and turn.outputs == [""]  # the run's, not the recall's NullObservation too
    [unread] = turn.unread
    assert unread.startswith("event 22 at ") and "Previous command outputs are truncated" in unread


def test_a_command_that_ran_unread_passes_on_its_file_with_the_finding() -> None:
    turn = turn_from_events(DATA["events"], f"run-command {NONCE}")
    ran = Where("/workspace", NONCE, Runtime({f"/workspace/run-{NONCE}.out": f"{NONCE}:42\n"}))
    check = CATALOG["run-command"].check(ran, turn)
    assert check.ok and check.finding and "never saw its output" in check.finding
    assert check.evidence == turn.unread


def test_an_unread_command_whose_file_is_not_there_fails() -> None:
    turn = turn_from_events(DATA["events"], f"run-command {NONCE}")
    check = CATALOG["run-command"].check(Where("/workspace", NONCE, Runtime({})), turn)
    assert not check.ok and "never showed" in check.detail and "not in the runtime" in check.detail


def test_output_that_never_showed_without_the_releases_word_for_it_fails() -> None:
    events = [dict(e, extras={**(e.get("extras") or {}), "metadata": {"prefix": ""}}) if e.get("observation") == "run"
              else e for e in DATA["events"]]
    turn = turn_from_events(events, f"run-command {NONCE}")
    ran = Where("/workspace", NONCE, Runtime({f"/workspace/run-{NONCE}.out": f"{NONCE}:42\n"}))
    assert turn.unread == [] and not CATALOG["run-command"].check(ran, turn).ok
