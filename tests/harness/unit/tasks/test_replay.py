"""The shipped recordings: tokens where a run's own values go, filled in by each replay."""
import json
from importlib import resources
from pathlib import Path

import pytest

from harness.tasks import CATALOG, replay


@pytest.mark.parametrize("task", ["create-file", "run-command", "edit-file", "multi-step", "repo"])
def test_a_recording_takes_the_replays_own_nonce_and_git_port(task: str) -> None:
    text = (resources.files("harness") / replay.FOLDER / f"{task}.json").read_text()
    assert replay.NONCE_TOKEN in text and set(json.loads(text)) == {"task", "events"}
    rec = replay.load(task, "0123abcdef", 61234)
    assert rec is not None and task in CATALOG
    body = json.dumps(rec.events)
    assert "{nonce}" not in body and "{git_port}" not in body
    assert f"[oh-matrix task {task} 0123abcdef]" in rec.events[0]["args"]["content"]
    if CATALOG[task].needs_git:
        assert "git://127.0.0.1:61234/" in body


def test_saving_puts_the_tokens_back(tmp_path: Path) -> None:
    # what python -m harness.devtools.record writes is the shipped file, to the byte
    rec = replay.load("repo", "0123abcdef", 61234)
    assert rec is not None
    written = replay.save(rec, tmp_path).read_text()
    assert "0123abcdef" not in written and "61234" not in written
    assert written == (resources.files("harness") / replay.FOLDER / "repo.json").read_text()
