"""`--llm replay` (V0): the built-in tasks with no LLM at all. Each task's trajectory was
recorded once from a scripted run's event stream (`python -m harness.devtools.record`) and
ships in harness/tasks/catalogs/replay/; a replay creates one conversation per task with
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

from harness.tasks import CATALOG, Where, llm

FOLDER = "tasks/catalogs/replay"  # inside the harness package
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
        thought = "oh-matrix: wait for the harness's setup (see harness/tasks/replay.py)"
        out.append({"action": "run", "source": "agent", "args": {"command": wait, "thought": thought}})
    for e in events[start + 1:]:
        if e.get("source") == "user" and e.get("action") == "message":
            break
        if e.get("source") == "agent" and e.get("action") in KEEP:
            args = {k: v for k, v in (e.get("args") or {}).items() if k not in ("timestamp",)}
            out.append({"action": e["action"], "source": "agent", "args": args})
    return Recording(task, where.nonce, where.git_port, out)


# A recording names no run's own values: the nonce and the git server's port it was made
# with become these tokens, and a replay puts in its own (fresh names per run, and no path of
# one long-gone run shipped in the package).
NONCE_TOKEN, GIT_PORT_TOKEN = "{nonce}", "{git_port}"


def save(recording: Recording, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recording.task}.json"
    events = json.dumps(recording.events, indent=1)
    events = events.replace(recording.nonce, NONCE_TOKEN)
    events = events.replace(f"127.0.0.1:{recording.git_port}", f"127.0.0.1:{GIT_PORT_TOKEN}")
    path.write_text(f'{{"task": {json.dumps(recording.task)},\n "events": {events}}}\n')
    return path


def load(task: str, nonce: str, git_port: int) -> Recording | None:
    """The shipped recording of a built-in task, if there is one, for a replay whose names
    carry `nonce` and whose git server listens on `git_port`."""
    item = resources.files("harness") / FOLDER / f"{task}.json"
    if not item.is_file():
        return None
    text = item.read_text().replace(NONCE_TOKEN, nonce).replace(GIT_PORT_TOKEN, str(git_port))
    return Recording(task, nonce, git_port, json.loads(text)["events"])
