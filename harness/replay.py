"""`--llm replay` (V0): the built-in tasks with no LLM at all. Each task's trajectory was
recorded once from a scripted run's event stream (`python -m harness.record`) and
ships in harness/catalogs/replay/; a replay creates one conversation per task with
`replay_json` (POST /api/conversations, 0.62.0's ReplayManager), OpenHands re-executes the
recorded actions in a fresh runtime, and the task's own effect check judges the result. If
the verdicts match the scripted ones, they never depended on our LLM stand-in.

A replay starts acting the moment its runtime is ready, before the harness can put a task's
files or its git server there, so for those tasks the recording gets one action of ours after
the user's message: a shell loop that waits (60 s at most) for what the harness sets up.
1.x has no replay: its tasks skip with that reason (harness/generations.py).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness import llm
from harness.tasks import CATALOG, Where

FOLDER = "catalogs/replay"
KEEP = ("run", "run_ipython", "edit", "write", "read", "finish", "message", "think")


@dataclass(frozen=True)
class Recording:
    task: str
    nonce: str  # the names and contents the recorded actions used
    git_port: int  # where the recorded git clone went (the repo task)
    events: list[dict[str, Any]]  # the user's message first, then the agent's actions


def _wait_for_setup(task: str, where: Where) -> str | None:
    """The shell loop that waits for what the harness puts in the runtime for `task`."""
    if task == "edit-file":
        path = where.path(f"edit-{where.nonce}.py")
        return f"timeout 60 sh -c 'until [ -e {shlex.quote(path)} ]; do sleep 0.3; done'"
    if CATALOG[task].needs_git:
        return f"timeout 60 sh -c 'until git ls-remote {where.git_url} >/dev/null 2>&1; do sleep 0.5; done'"
    return None


def extract(events: list[dict[str, Any]], task: str, where: Where) -> Recording | None:
    """One task's trajectory from a conversation's V0 events: its message, then the agent's
    actions up to the next task's message."""
    key = llm.marker(task, where.nonce)
    start = next((i for i, e in enumerate(events) if e.get("source") == "user" and e.get("action") == "message"
                  and key in str((e.get("args") or {}).get("content"))), None)
    if start is None:
        return None
    out = [{"action": "message", "source": "user", "args": {"content": events[start]["args"]["content"]}}]
    if wait := _wait_for_setup(task, where):
        thought = "oh-matrix: wait for the harness's setup (see harness/replay.py)"
        out.append({"action": "run", "source": "agent", "args": {"command": wait, "thought": thought}})
    for e in events[start + 1:]:
        if e.get("source") == "user" and e.get("action") == "message":
            break
        if e.get("source") == "agent" and e.get("action") in KEEP:
            args = {k: v for k, v in (e.get("args") or {}).items() if k not in ("timestamp",)}
            out.append({"action": e["action"], "source": "agent", "args": args})
    return Recording(task, where.nonce, where.git_port, out)


def save(recording: Recording, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recording.task}.json"
    path.write_text(json.dumps({"task": recording.task, "nonce": recording.nonce, "git_port": recording.git_port,
                                "events": recording.events}, indent=1) + "\n")
    return path


def load(task: str) -> Recording | None:
    """The shipped recording of a built-in task, if there is one."""
    item = resources.files("harness") / FOLDER / f"{task}.json"
    if not item.is_file():
        return None
    data = json.loads(item.read_text())
    return Recording(data["task"], data["nonce"], int(data["git_port"]), data["events"])
