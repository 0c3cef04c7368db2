"""The task catalog: real agent work on a connected cell, each verified by its EFFECT (a
file read back from the runtime container, a commit read back from the git server),
never by what the agent says.

A task is a prompt a real LLM can follow, a marker the scripted LLM (llm.py) keys its
script on, and a check. Every name and content carries a per-run nonce, so a file left
by an earlier run can never make a task pass.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness import llm
from harness.openhands import Turn

Step = dict[str, Any]
GIT_REPO = "oh-matrix.git"


class Container(Protocol):
    """What a task needs of a container: run a command in it (docker-py's Container has it)."""

    def exec_run(self, cmd: list[str], user: str = "", demux: bool = False) -> Any: ...


@dataclass
class Where:
    """What a task needs to know about the cell it runs on."""

    workspace: str  # the runtime's working directory: V0 /workspace, V1 /workspace/project
    nonce: str
    runtime: Container | None = None
    git: Container | None = None  # the git server (repo task), sharing the runtime's loopback
    git_port: int = 0

    def path(self, name: str) -> str:
        return f"{self.workspace}/{name}"

    @property
    def git_url(self) -> str:
        return f"git://127.0.0.1:{self.git_port}/{GIT_REPO}"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Task:
    name: str
    prompt: Callable[[Where], str]  # natural language: what a real LLM is asked
    steps: Callable[[Where], list[Step]]  # what the scripted LLM answers, in order
    check: Callable[[Where, Turn], Check]
    setup: Callable[[Where], None] | None = None  # in the runtime, before the prompt
    needs_git: bool = False

    def message(self, where: Where) -> str:
        return f"{self.prompt(where)}\n\n{llm.marker(self.name, where.nonce)}"


def read(c: Container | None, path: str) -> tuple[int, str]:
    if c is None:
        return -1, "(no container)"
    code, out = c.exec_run(["cat", path], demux=False)
    return int(code), (out or b"").decode(errors="replace")


def sh(c: Container, script: str, user: str = "") -> tuple[int, str]:
    code, out = c.exec_run(["sh", "-c", script], user=user, demux=False)
    return int(code), (out or b"").decode(errors="replace")


def _expect_file(where: Where, path: str, want: str) -> Check:
    code, got = read(where.runtime, path)
    if code != 0:
        return Check(False, f"{path} not in the runtime: {got.strip()[:200]}")
    if got != want:
        return Check(False, f"{path} holds {got[:200]!r}, expected {want!r}")
    return Check(True, f"{path} holds the expected {len(want)} bytes")


# -- create-file ----------------------------------------------------------------------------

def _created(w: Where) -> tuple[str, str]:
    return w.path(f"created-{w.nonce}.txt"), f"oh-matrix {w.nonce}\nfile creation works\n"


CREATE_FILE = Task(
    "create-file",
    prompt=lambda w: f"Create the file {_created(w)[0]} with exactly this content:\n{_created(w)[1]}",
    steps=lambda w: [{"do": "create", "path": _created(w)[0], "text": _created(w)[1]}],
    check=lambda w, turn: _expect_file(w, *_created(w)),
)


# -- run-command ----------------------------------------------------------------------------

def _run_out(w: Where) -> tuple[str, str]:
    return w.path(f"run-{w.nonce}.out"), f"{w.nonce}:42"


def _check_run(w: Where, turn: Turn) -> Check:
    path, want = _run_out(w)
    if not any(want in o for o in turn.outputs):
        return Check(False, f"the runtime's output never showed {want!r} (outputs: {[o[:80] for o in turn.outputs]})")
    return _expect_file(w, path, want + "\n")


RUN_COMMAND = Task(
    "run-command",
    prompt=lambda w: (f"Run this shell command and show me its output: "
                      f"echo {w.nonce}:$(expr 6 \\* 7) | tee {_run_out(w)[0]}"),
    steps=lambda w: [{"do": "bash", "command": f"echo {w.nonce}:$(expr 6 \\* 7) | tee {_run_out(w)[0]}"}],
    check=_check_run,
)


# -- edit-file ------------------------------------------------------------------------------

def _edited(w: Where) -> tuple[str, str, str]:
    before = f"greeting = 'hello'\nnonce = '{w.nonce}'\n"
    return w.path(f"edit-{w.nonce}.py"), before, before.replace("'hello'", "'goodbye'")


def _seed_edit(w: Where) -> None:
    path, before, _ = _edited(w)
    assert w.runtime is not None
    # As the runtime's own user (V1: uid 10001), so the agent may write it.
    code, out = sh(w.runtime, f"mkdir -p {w.workspace} && printf %s {shlex.quote(before)} > {path} "
                              f"&& chmod 666 {path}")
    if code != 0:
        raise RuntimeError(f"could not seed {path} in the runtime: {out.strip()[:200]}")


EDIT_FILE = Task(
    "edit-file",
    prompt=lambda w: f"In {_edited(w)[0]}, replace 'hello' with 'goodbye'. Change nothing else.",
    steps=lambda w: [{"do": "replace", "path": _edited(w)[0], "old": "'hello'", "new": "'goodbye'"}],
    check=lambda w, turn: _expect_file(w, _edited(w)[0], _edited(w)[2]),
    setup=_seed_edit,
)


# -- multi-step -----------------------------------------------------------------------------

def _multi(w: Where) -> tuple[str, str, str, str]:
    script, out = w.path(f"squares-{w.nonce}.sh"), w.path(f"squares-{w.nonce}.out")
    body = f"#!/bin/sh\nfor i in 1 2 3 4; do echo \"{w.nonce} $i $((i * i))\"; done > {out}\n"
    want = "".join(f"{w.nonce} {i} {i * i}\n" for i in range(1, 5))
    return script, body, out, want


MULTI_STEP = Task(
    "multi-step",
    prompt=lambda w: (f"Write a shell script {_multi(w)[0]} that writes, for i from 1 to 4, the line "
                      f"'{w.nonce} i i*i' to {_multi(w)[2]}; then run it with sh."),
    steps=lambda w: [{"do": "create", "path": _multi(w)[0], "text": _multi(w)[1]},
                     {"do": "bash", "command": f"sh {_multi(w)[0]} && cat {_multi(w)[2]}"}],
    check=lambda w, turn: _expect_file(w, _multi(w)[2], _multi(w)[3]),
)


# -- repo -----------------------------------------------------------------------------------

def _repo(w: Where) -> tuple[str, str, str]:
    clone = w.path(f"repo-{w.nonce}")
    return clone, f"{clone}/CHANGE-{w.nonce}.md", f"oh-matrix {w.nonce}"


def _check_repo(w: Where, turn: Turn) -> Check:
    if w.git is None:
        return Check(False, "no git server")
    _, _, subject = _repo(w)
    code, log = sh(w.git, f"git --git-dir=/srv/git/{GIT_REPO} log -1 --format=%s main")
    if code != 0:
        return Check(False, f"the server's main branch cannot be read: {log.strip()[:200]}")
    if log.strip() != subject:
        return Check(False, f"the server's main branch ends at {log.strip()!r}, not the pushed {subject!r}")
    code, shown = sh(w.git, f"git --git-dir=/srv/git/{GIT_REPO} show main:CHANGE-{w.nonce}.md")
    if code != 0 or w.nonce not in shown:
        return Check(False, f"the pushed commit lacks CHANGE-{w.nonce}.md: {shown.strip()[:200]}")
    return Check(True, f"the server's main branch has the commit {subject!r} with CHANGE-{w.nonce}.md")


def _repo_steps(w: Where) -> list[Step]:
    clone, change, subject = _repo(w)
    git = "git -c user.name=oh-matrix -c user.email=oh-matrix@localhost"
    return [{"do": "bash", "command": f"git clone {w.git_url} {clone}"},
            {"do": "create", "path": change, "text": f"# {w.nonce}\nchanged by the agent\n"},
            {"do": "bash", "command": f"cd {clone} && git add -A && {git} commit -q -m '{subject}' "
                                      f"&& git push origin HEAD:main"}]


REPO = Task(
    "repo",
    prompt=lambda w: (f"Clone {w.git_url} into {_repo(w)[0]}, add a file CHANGE-{w.nonce}.md saying what you "
                      f"changed, commit it with the message '{_repo(w)[2]}' and push it to main."),
    steps=_repo_steps,
    check=_check_repo,
    needs_git=True,
)


CATALOG: dict[str, Task] = {t.name: t for t in (CREATE_FILE, RUN_COMMAND, EDIT_FILE, MULTI_STEP, REPO)}
DEFAULT = list(CATALOG)
