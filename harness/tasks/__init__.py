"""The task catalogs: real agent work on a connected cell.

- built-in (CATALOG below): each verified by its EFFECT (a file read back from the runtime
  container, a commit read back from the git server), never by what the agent says; every
  name and content carries a per-run nonce, so a file left by an earlier run can never make
  a task pass;
- the upstream catalog (harness/tasks/catalogs/upstream.toml): OpenHands' own integration tests
  t01-t07, as task files;
- task files (harness/tasks/taskfile.py, docs/task-files.md): your own, named in a matrix as
  `file:PATH`. Each starts in an empty workspace, as each upstream test had a fresh sandbox.

A task is a prompt a real LLM can follow, a marker the scripted LLM (llm.py) keys its
script on, its keyless steps for that LLM, and a check. `resolve` turns a matrix's
`run.tasks` into tasks; what a task needs that a release or image lacks makes it a skip.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from harness import generations
from harness.errors import InputError, TaskSetupError
from harness.generations import Generation
from harness.model import ImageSet
from harness.openhands import Turn
from harness.secrets import reveal
from harness.tasks import taskfile
from harness.tasks.llm import marker
from harness.tasks.taskfile import CheckSpec, Spec

Step = dict[str, Any]
GIT_REPO = "oh-matrix.git"


class Container(Protocol):
    """What a task needs of a container: run a command in it (docker-py's Container has it)."""

    def exec_run(self, cmd: list[str], user: str = "", demux: bool = False,
                 environment: dict[str, str] | None = None) -> Any: ...


@dataclass
class Where:
    """What a task needs to know about the cell it runs on."""

    workspace: str  # the runtime's working directory: V0 /workspace, V1 /workspace/project
    nonce: str
    runtime: Container | None = None
    git: Container | None = None  # the git server (repo task), sharing the runtime's loopback
    git_port: int = 0
    env: dict[str, str] = field(default_factory=dict)  # a task file's secrets: for setup and check only
    timeout: float = 120.0  # for one setup or check command

    def path(self, name: str) -> str:
        return f"{self.workspace}/{name}"

    @property
    def git_url(self) -> str:
        return f"git://127.0.0.1:{self.git_port}/{GIT_REPO}"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    evidence: list[str] = field(default_factory=list)  # what the check saw, for a failure
    # What the release got wrong although the effect is there (TaskResult.finding), with the
    # events that prove it in `evidence`.
    finding: str | None = None


@dataclass(frozen=True)
class Task:
    name: str
    prompt: Callable[[Where], str]  # natural language: what a real LLM is asked
    steps: Callable[[Where], list[Step]] | None  # what the scripted LLM answers, in order (None: no keyless steps)
    check: Callable[[Where, Turn], Check]
    setup: Callable[[Where], None] | None = None  # in the runtime, before the prompt
    needs_git: bool = False
    catalog: str = "builtin"  # builtin | upstream | file:PATH (TaskResult.catalog)
    source: str | None = None  # provenance, repo@commit:path
    budget: float | None = None  # seconds for the agent; None: the matrix's task_budget
    generations: tuple[str, ...] = ()  # the generations it applies to; empty: all
    needs: tuple[str, ...] = ()  # capabilities (generations.CAPABILITIES)
    secrets: tuple[str, ...] = ()  # env var names whose values setup and check get
    verbatim: bool = False  # a real LLM gets the prompt as written, with no marker

    def message(self, where: Where, scripted: bool = True) -> str:
        if self.verbatim and not scripted:
            return self.prompt(where)
        return f"{self.prompt(where)}\n\n{marker(self.name, where.nonce)}"

    def key(self, where: Where, scripted: bool = True) -> str:
        """The text that finds this task's user message in the event stream."""
        return self.prompt(where) if self.verbatim and not scripted else marker(self.name, where.nonce)

    def skip(self, gen: Generation, images: ImageSet | None, scripted: bool) -> str | None:
        """Why this task cannot run on this cell (None: it can): its generations, a
        capability the generation or the image lacks, no keyless steps for the scripted LLM."""
        if self.generations and gen.name not in self.generations:
            return (f"applies to {', '.join(self.generations)} only ({self.catalog} says generations = "
                    f"{list(self.generations)}), not {gen.name}")
        for need in self.needs:
            if need in generations.NEVER_HERE:
                return f"needs {need}: {generations.NEVER_HERE[need]}"
            if need not in gen.capabilities:
                return f"needs {need}: " + gen.lacks_why.get(need, f"the {gen.name} agent has no {need}")
            why = images.lack_reason(need) if images is not None else None
            if why:
                return f"needs {need}: {why}"
        if scripted and self.steps is None:
            return (f"needs --llm real: {self.catalog} gives no keyless steps for the scripted LLM "
                    "(set LLM_MODEL and LLM_API_KEY, or add [[tasks.steps]])")
        return None


def read(c: Container | None, path: str) -> tuple[int, str]:
    if c is None:
        return -1, "(no container)"
    code, out = c.exec_run(["cat", path], demux=False)
    return int(code), (out or b"").decode(errors="replace")


def sh(c: Container, script: str, user: str = "") -> tuple[int, str]:
    code, out = c.exec_run(["sh", "-c", script], user=user, demux=False)
    return int(code), (out or b"").decode(errors="replace")


# A task file's command, as the runtime's own user (docker exec's default: V0 root, V1 the
# sandbox's openhands), in the workspace, with bash as upstream's runtime runs commands.
# Its output goes through a file, so a process it starts in the background (t05's web
# server) does not hold docker exec open; `timeout` ends a command that never returns.
RUN = ('cd "$OH_MATRIX_WORKSPACE" || exit 1; out=$(mktemp) || exit 1; '
       'timeout "$OH_MATRIX_TIMEOUT" bash -c "$1" >"$out" 2>&1 </dev/null; code=$?; '
       'cat "$out"; rm -f "$out"; exit $code')
TIMED_OUT = 124  # timeout(1)'s exit status


def run_in(w: Where, command: str) -> tuple[int, str]:
    """(exit status, output) of a task file's command in the runtime."""
    if w.runtime is None:
        return -1, "(no runtime container)"
    # the task's secrets as their real values: for the command's process only
    env = {**{k: reveal(v) for k, v in w.env.items()}, "OH_MATRIX_WORKSPACE": w.workspace,
           "OH_MATRIX_TIMEOUT": str(int(w.timeout))}
    code, out = w.runtime.exec_run(["sh", "-c", RUN, "sh", command], demux=False, environment=env)
    return int(code), (out or b"").decode(errors="replace")


def tail(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


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
    if any(want in o for o in turn.outputs):
        return _expect_file(w, path, want + "\n")
    never = f"the runtime's output never showed {want!r} (outputs: {[o[:80] for o in turn.outputs]})"
    if not turn.unread:
        return Check(False, never)
    # The release answered every run of the command without reading its output: whether the
    # command ran is then the file's to say, and the lost output is the release's finding.
    ran = _expect_file(w, path, want + "\n")
    if not ran.ok:
        return Check(False, f"{never}; {ran.detail}", [*turn.unread, *ran.evidence])
    return Check(True, ran.detail, list(turn.unread), finding=(
        f"the command ran (its file holds the output) but the agent never saw its output: {never}; "
        "OpenHands answered it before reading it"))


RUN_COMMAND = Task(
    "run-command",
    prompt=lambda w: (f"Run this shell command and show me its output: "
                      f"echo {w.nonce}:$(expr 6 \\* 7) | tee {_run_out(w)[0]}"),
    # The check reads the runtime's output: if the bash tool gives back nothing, look again.
    steps=lambda w: [{"do": "bash", "command": f"echo {w.nonce}:$(expr 6 \\* 7) | tee {_run_out(w)[0]}",
                      "look_again": True}],
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
        raise TaskSetupError(f"could not seed {path} in the runtime: {out.strip()[:200]}")


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


# -- task files -----------------------------------------------------------------------------

def _at(w: Where, path: str) -> str:
    """A task file's path: relative ones are in the agent's workspace."""
    return path if path.startswith("/") else w.path(path)


def _steps_of(spec: Spec) -> Callable[[Where], list[Step]] | None:
    if spec.steps is None:
        return None

    def steps(w: Where) -> list[Step]:
        return [{**s, "path": _at(w, s["path"])} if "path" in s else dict(s) for s in spec.steps or ()]

    return steps


def _setup_of(spec: Spec) -> Callable[[Where], None]:
    def setup(w: Where) -> None:
        # An empty workspace, as upstream's fresh sandbox per test (the cell's tasks share one
        # runtime); best effort, so a read-only workspace still gets to the agent.
        run_in(w, "find . -mindepth 1 -delete 2>/dev/null; true")
        for f in spec.files:
            path = _at(w, f.path)
            data = base64.b64encode(f.content.encode()).decode()
            code, out = run_in(w, f"mkdir -p -- {shlex.quote(str(Path(path).parent))} && "
                                  f"printf %s {data} | base64 -d > {shlex.quote(path)}")
            if code != 0:
                raise TaskSetupError(f"could not seed {path} in the runtime (exit {code}): {tail(out, 200)}")
        for i, command in enumerate(spec.setup):
            code, out = run_in(w, command)
            if code != 0:
                raise TaskSetupError(f"setup[{i}] `{command}` exited {code} in the runtime: {tail(out, 200)}")

    return setup


def _check_command(c: CheckSpec, w: Where) -> Check:
    assert c.run is not None
    code, out = run_in(w, c.run)
    text = out.replace("\r\n", "\n")
    seen = [f"check command: {c.run} (in {w.workspace})",
            f"check exit status: {code}" + (f" (timed out after {w.timeout:.0f} s)" if code == TIMED_OUT else "")
            + f", expected {c.exit_code}", f"check output (tail): {tail(text)}"]
    if code != c.exit_code:
        return Check(False, f"`{c.run}` exited {code}, expected {c.exit_code}: {tail(text, 200)}", seen)
    if c.output is not None and text.strip() != c.output.strip():
        return Check(False, f"`{c.run}` printed {tail(text, 200)!r}, expected {c.output.strip()!r}", seen)
    if c.output_contains is not None and c.output_contains not in text:
        return Check(False, f"`{c.run}` printed {tail(text, 200)!r}, which lacks {c.output_contains!r}", seen)
    return Check(True, f"`{c.run}` exited {code}" + (" with the expected output" if c.output is not None
                                                     or c.output_contains is not None else ""))


def _check_file(c: CheckSpec, w: Where) -> Check:
    assert c.file is not None and c.content is not None
    path = _at(w, c.file)
    code, got = run_in(w, f"cat -- {shlex.quote(path)}")
    seen = [f"check file: {path}", f"check read: exit status {code}, {len(got)} bytes: {tail(got)}"]
    if code != 0:
        return Check(False, f"{path} not in the runtime: {tail(got, 200)}", seen)
    if got != c.content:
        return Check(False, f"{path} holds {got[:200]!r}, expected {c.content[:200]!r}", seen)
    return Check(True, f"{path} holds the expected {len(c.content)} bytes")


def _check_said(c: CheckSpec, turn: Turn) -> Check:
    texts = [text for kind, text in turn.said if kind in c.messages_from]
    kinds = ", ".join(c.messages_from)
    want = " or ".join(repr(x) for x in c.message_contains)
    found = next((x for x in c.message_contains if any(x in text for text in texts)), None)
    if found is not None:
        return Check(True, f"the agent said {found!r} ({kinds})")
    seen = [f"agent said ({kind}): {tail(text, 300)}" for kind, text in turn.said] or ["the agent said nothing"]
    return Check(False, f"the agent's messages ({kinds}) never contain {want}", seen)


def _check_of(spec: Spec) -> Callable[[Where, Turn], Check]:
    def check(w: Where, turn: Turn) -> Check:
        c = spec.check
        parts = ([_check_command(c, w)] if c.run is not None else []) + ([_check_file(c, w)] if c.file else []) \
            + ([_check_said(c, turn)] if c.message_contains else [])
        failed = [p for p in parts if not p.ok]
        if failed:
            return Check(False, failed[0].detail, [e for p in failed for e in p.evidence])
        return Check(True, "; ".join(p.detail for p in parts))

    return check


def from_spec(spec: Spec) -> Task:
    return Task(spec.name, prompt=lambda w: spec.instruction, steps=_steps_of(spec), check=_check_of(spec),
                setup=_setup_of(spec), catalog=spec.catalog, source=spec.provenance, budget=spec.budget,
                generations=spec.generations, needs=spec.needs, secrets=spec.secrets, verbatim=True)


# -- run.tasks -> tasks ---------------------------------------------------------------------

UPSTREAM = "upstream"  # OpenHands' own integration tests (harness/tasks/catalogs/upstream.toml)
UPSTREAM_FILE = "harness/tasks/catalogs/upstream.toml"
FILE_PREFIX = "file:"


def upstream_text() -> str:
    return (resources.files("harness.tasks") / "catalogs" / "upstream.toml").read_text()


def upstream() -> dict[str, Task]:
    return {s.name: from_spec(s) for s in taskfile.parse(upstream_text(), UPSTREAM_FILE, UPSTREAM)}


def resolve(entries: list[str], base: Path, texts: dict[str, str] | None = None,
            key: str = "run.tasks") -> tuple[list[Task], dict[str, str]]:
    """A matrix's `run.tasks` as tasks, in order: built-in names, upstream catalog names
    (`upstream` alone: all of it), `file:PATH` (every task of a task file, PATH relative to
    the matrix file). Returns the task files' texts as read (`texts`: read before, e.g. by
    the controller for a worker). Unknown names and duplicates are input errors."""
    texts = dict(texts or {})
    ups = upstream()
    out: list[Task] = []
    for i, entry in enumerate(entries):
        if entry.startswith(FILE_PREFIX):
            rel = entry.removeprefix(FILE_PREFIX)
            path = base / rel
            if str(path) not in texts:
                try:
                    texts[str(path)] = path.read_text(encoding="utf-8")
                except OSError as e:
                    raise InputError(f"{key}[{i}]: {entry}: cannot read task file {path}: {e.strerror}") from None
                except UnicodeDecodeError as e:  # TOML is UTF-8 by its spec
                    raise InputError(f"{key}[{i}]: {entry}: {path}: not UTF-8 text (byte {e.start})") from None
            found = [from_spec(s) for s in taskfile.parse(texts[str(path)], str(path), entry)]
        elif entry == UPSTREAM:
            found = list(ups.values())
        elif entry in CATALOG:
            found = [CATALOG[entry]]
        elif entry in ups:
            found = [ups[entry]]
        else:
            raise InputError(f"{key}[{i}]: unknown task {entry!r} (built-in: {', '.join(CATALOG)}; upstream: "
                             f"{', '.join(ups)}, or all of them as {UPSTREAM!r}; or file:PATH for a task file)")
        for t in found:
            twin = next((o for o in out if o.name == t.name), None)
            if twin is not None:
                raise InputError(f"{key}[{i}]: task {t.name!r} twice (from {twin.catalog} and from {t.catalog}); "
                                 "task names must be unique in a run")
            out.append(t)
    return out, texts
