"""Task files: your own tasks as TOML (docs/task-files.md, docs/task-file.schema.json).

    [[tasks]]
    name = "hello-script"                 # [a-z0-9-]+: the test id is TAG-MODE-NAME
    instruction = "Write a shell script ..."  # verbatim what a real model is told
    budget = 120                          # optional: seconds for the agent (default: run.task_budget)
    generations = ["v0", "v1"]            # optional: the API generations it applies to (default: all)
    needs = ["ipython"]                   # optional: capabilities (harness/generations.py CAPABILITIES)
    secrets = ["MY_TOKEN"]                # optional: env var names passed to setup and check only
    setup = ["git init"]                  # optional: commands run in the runtime before the agent starts
    source = { repo = "OWNER/NAME", commit = "SHA", path = "PATH" }  # optional provenance
    [[tasks.files]]                       # optional: files seeded before the setup commands
    path = "bad.txt"                      # relative paths are in the agent's workspace
    content = "..."
    [tasks.check]                         # required: at least one kind; every kind given must hold
    run = "bash hello.sh"                 # a command, in the workspace ...
    exit_code = 0                         # ... its exit status (default 0) ...
    output = "hello"                      # ... its output, stripped, equal to this ...
    output_contains = "hel"               # ... or containing this
    file = "greeting.txt"                 # a file's content, exactly
    content = "hello\\n"
    message_contains = "707"              # text the agent's messages must contain (a list: any of them) ...
    messages_from = ["message"]           # ... read from these kinds (default: all, see SAID_KINDS)
    [[tasks.steps]]                       # optional: what the scripted LLM answers, in order
    bash = "echo hi"                      # one kind per step: bash, create (+ text), replace (+ old,
                                          # new), ipython, say (+ from_output), finish

Parsing is data only (no docker, no httpx): every error is an InputError of one line naming
the file, the task and the key, raised while the matrix is loaded, before anything starts.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from harness import generations
from harness.errors import InputError
from harness.openhands import SAID_KINDS

NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TASK_KEYS = ("name", "instruction", "budget", "generations", "needs", "secrets", "setup", "files", "check",
             "steps", "source")
CHECK_KEYS = ("run", "exit_code", "output", "output_contains", "file", "content", "message_contains",
              "messages_from")
# Each step kind: its own key (the step's main value) and the other keys it takes, required or not.
STEP_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bash": ((), ()),
    "create": (("text",), ()),
    "replace": (("old", "new"), ()),
    "ipython": ((), ()),
    "say": ((), ("from_output",)),
    "finish": ((), ()),
}
GROUP_REF = re.compile(r"\\(\d+)|\\g<(\w+)>")  # \1, \g<1>, \g<name> in a say step's text
MAY_BE_EMPTY = ("text", "new")  # a file's text and a replacement may be empty; a command may not
LAST_ONLY = ("say", "finish")  # the agent's turn ends with them: nothing after would run
# The capability a step kind needs of the generation's agent (harness/generations.py).
STEP_NEEDS = {"ipython": "ipython"}


@dataclass(frozen=True)
class SeedFile:
    path: str
    content: str


@dataclass(frozen=True)
class CheckSpec:
    run: str | None = None
    exit_code: int = 0
    output: str | None = None
    output_contains: str | None = None
    file: str | None = None
    content: str | None = None
    message_contains: tuple[str, ...] = ()  # any of them
    messages_from: tuple[str, ...] = SAID_KINDS


@dataclass(frozen=True)
class Spec:
    """One task of a task file, checked."""

    name: str
    instruction: str
    check: CheckSpec
    catalog: str  # "upstream" or "file:PATH"
    origin: str  # the file, for messages
    budget: float | None = None
    generations: tuple[str, ...] = ()  # empty: all
    needs: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    files: tuple[SeedFile, ...] = ()
    steps: tuple[dict[str, Any], ...] | None = None  # None: no keyless steps (needs --llm real)
    source: dict[str, str] = field(default_factory=dict)

    @property
    def provenance(self) -> str | None:
        s = self.source
        return f"{s['repo']}@{s['commit']}:{s['path']}" if s else None


class _Task:
    """Errors for one task: `FILE: task NAME: KEY: what is wrong`."""

    def __init__(self, origin: str, index: int, name: str | None) -> None:
        self.origin, self.where = origin, f"task {name}" if name else f"tasks[{index}]"

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{self.origin}: {self.where}: {key}: {msg}")

    def unknown(self, data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        extra = sorted(set(data) - set(allowed))
        if extra:
            raise self.fail(f"{key}.{extra[0]}" if key else extra[0],
                            f"unknown key (expected one of {', '.join(allowed)})")

    def text(self, data: dict[str, Any], key: str, required: bool = False, empty: bool = True) -> str | None:
        value = data.get(key.rpartition(".")[2])
        if value is None:
            if required:
                raise self.fail(key, "missing")
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        if not empty and not value.strip():
            raise self.fail(key, "empty")
        return value

    def names(self, data: dict[str, Any], key: str, known: dict[str, Any] | None = None,
              pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of names")
        for i, v in enumerate(value):
            if known is not None and v not in known:
                raise self.fail(f"{key}[{i}]", f"unknown {key.rstrip('s')} {v!r} (known: {', '.join(known)})")
            if pattern is not None and not pattern.fullmatch(v):
                raise self.fail(f"{key}[{i}]", f"{v!r} is not an environment variable name")
            if value.index(v) != i:
                raise self.fail(f"{key}[{i}]", f"duplicate {v!r}")
        return tuple(value)


def parse(text: str, origin: str, catalog: str) -> list[Spec]:
    """Every task of a task file's text; `origin` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{origin}: invalid TOML: {e}") from None
    extra = sorted(set(data) - {"tasks"})
    if extra:
        raise InputError(f"{origin}: {extra[0]}: unknown key (a task file holds [[tasks]] tables only)")
    raw = data.get("tasks")
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{origin}: tasks: expected at least one [[tasks]] table")
    specs: list[Spec] = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            raise InputError(f"{origin}: tasks[{i}]: expected a table")
        spec = _task(t, i, origin, catalog)
        if any(s.name == spec.name for s in specs):
            raise InputError(f"{origin}: task {spec.name}: name: duplicate task name {spec.name!r} in this file")
        specs.append(spec)
    return specs


def _task(t: dict[str, Any], i: int, origin: str, catalog: str) -> Spec:
    name = t.get("name")
    r = _Task(origin, i, name if isinstance(name, str) and NAME.fullmatch(name) else None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise r.fail("name", f"expected lowercase letters, digits and dashes ([a-z0-9-]), got {name!r}")
    r.unknown(t, "", TASK_KEYS)
    instruction = r.text(t, "instruction", required=True, empty=False)
    assert instruction is not None
    budget = t.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0):
        raise r.fail("budget", f"expected a positive number of seconds, got {budget!r}")
    gens = r.names(t, "generations", generations.GENERATIONS)
    needs = r.names(t, "needs", generations.CAPABILITIES)
    secrets = r.names(t, "secrets", pattern=ENV_NAME)
    setup = t.get("setup", [])
    if not isinstance(setup, list) or not all(isinstance(c, str) for c in setup):
        raise r.fail("setup", "expected a list of commands")
    for j, c in enumerate(setup):
        if not c.strip():
            raise r.fail(f"setup[{j}]", "empty command")
    check = _check(r, t.get("check"))
    steps = _steps(r, t)
    spec = Spec(name=name, instruction=instruction, check=check, catalog=catalog, origin=origin,
                budget=float(budget) if budget is not None else None, generations=gens, needs=needs,
                secrets=secrets, setup=tuple(setup), files=_files(r, t.get("files", [])), steps=steps,
                source=_source(r, t.get("source")))
    _runnable(r, spec)
    return spec


def _files(r: _Task, raw: Any) -> tuple[SeedFile, ...]:
    if not isinstance(raw, list):
        raise r.fail("files", "expected [[tasks.files]] tables of path and content")
    out = []
    for j, f in enumerate(raw):
        key = f"files[{j}]"
        if not isinstance(f, dict):
            raise r.fail(key, "expected a table of path and content")
        r.unknown(f, key, ("path", "content"))
        path = r.text(f, f"{key}.path", required=True, empty=False)
        content = r.text(f, f"{key}.content", required=True)
        assert path is not None and content is not None
        out.append(SeedFile(path, content))
    return tuple(out)


def _source(r: _Task, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise r.fail("source", "expected a table of repo, commit and path")
    r.unknown(raw, "source", ("repo", "commit", "path"))
    for k in ("repo", "commit", "path"):
        r.text(raw, f"source.{k}", required=True, empty=False)
    return {k: str(raw[k]) for k in ("repo", "commit", "path")}


def _check(r: _Task, raw: Any) -> CheckSpec:
    if raw is None:
        raise r.fail("check", "missing: a task needs a check (run, file or message_contains)")
    if not isinstance(raw, dict):
        raise r.fail("check", "expected a table")
    r.unknown(raw, "check", CHECK_KEYS)
    run = r.text(raw, "check.run", empty=False)
    code = raw.get("exit_code", 0)
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        raise r.fail("check.exit_code", f"expected an exit status 0-255, got {code!r}")
    output, contains = r.text(raw, "check.output"), r.text(raw, "check.output_contains", empty=False)
    if run is None:
        for k in ("exit_code", "output", "output_contains"):
            if k in raw:
                raise r.fail(f"check.{k}", "needs check.run: the command whose result it judges")
    path, content = r.text(raw, "check.file", empty=False), r.text(raw, "check.content")
    if (path is None) != (content is None):
        raise r.fail("check.file" if path is None else "check.content", "check.file and check.content go together")
    said = raw.get("message_contains")
    if isinstance(said, str):
        said = [said]
    if said is not None and (not isinstance(said, list) or not said
                             or not all(isinstance(x, str) and x for x in said)):
        raise r.fail("check.message_contains", f"expected a non-empty string or list of them, got {said!r}")
    kinds = raw.get("messages_from")
    if kinds is not None:
        if said is None:
            raise r.fail("check.messages_from", "needs check.message_contains")
        if not isinstance(kinds, list) or not kinds or not all(k in SAID_KINDS for k in kinds):
            raise r.fail("check.messages_from", f"expected a non-empty list of {', '.join(SAID_KINDS)}, got {kinds!r}")
    if run is None and path is None and said is None:
        raise r.fail("check", "none of run, file or message_contains: nothing would be checked")
    return CheckSpec(run=run, exit_code=code, output=output, output_contains=contains, file=path, content=content,
                     message_contains=tuple(said or ()), messages_from=tuple(kinds) if kinds else SAID_KINDS)


def _steps(r: _Task, t: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    """Keyless steps as the scripted LLM's neutral steps (harness/tasks/llm.py)."""
    raw = t.get("steps")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise r.fail("steps", "expected at least one [[tasks.steps]] table (leave steps out for --llm real only)")
    out: list[dict[str, Any]] = []
    for j, s in enumerate(raw):
        key = f"steps[{j}]"
        if not isinstance(s, dict):
            raise r.fail(key, "expected a table")
        kinds = [k for k in s if k in STEP_KINDS]
        if len(kinds) != 1:
            raise r.fail(key, f"expected exactly one of {', '.join(STEP_KINDS)}, got {sorted(kinds) or 'none'}")
        kind = kinds[0]
        required, optional = STEP_KINDS[kind]
        r.unknown(s, key, (kind, *required, *optional))
        for k in (kind, *required):
            r.text(s, f"{key}.{k}", required=True, empty=k in MAY_BE_EMPTY or (k == kind == "finish"))
        for k in optional:
            r.text(s, f"{key}.{k}", empty=False)
        if kind in LAST_ONLY and j != len(raw) - 1:
            raise r.fail(key, f"a {kind} step ends the agent's turn: it must be the last step")
        if s.get("from_output") is not None:
            try:
                pattern = re.compile(s["from_output"])
            except re.error as e:
                raise r.fail(f"{key}.from_output", f"not a regular expression: {e}") from None
            for ref in GROUP_REF.findall(s["say"]):
                name = ref[0] or ref[1]
                if not ((name.isdigit() and int(name) <= pattern.groups) or name in pattern.groupindex):
                    raise r.fail(f"{key}.say", f"refers to group {name}, which from_output does not have "
                                               f"({pattern.groups} groups)")
        out.append(_neutral(kind, s))
    # A command whose output the next step reads: if the bash tool gives back nothing (V0's
    # sometimes does for a quick command), the scripted LLM looks again, as a model would.
    for here, after in itertools.pairwise(out):
        if here["do"] == "bash" and after.get("from_output"):
            here["look_again"] = True
    return tuple(out)


def _neutral(kind: str, s: dict[str, Any]) -> dict[str, Any]:
    if kind == "bash":
        return {"do": "bash", "command": s["bash"]}
    if kind == "create":
        return {"do": "create", "path": s["create"], "text": s["text"]}
    if kind == "replace":
        return {"do": "replace", "path": s["replace"], "old": s["old"], "new": s["new"]}
    if kind == "ipython":
        return {"do": "ipython", "code": s["ipython"]}
    if kind == "say":
        return {"do": "say", "text": s["say"], **({"from_output": s["from_output"]} if "from_output" in s else {})}
    return {"do": "finish", "message": s["finish"]}


def _runnable(r: _Task, spec: Spec) -> None:
    """The keyless steps must run on every generation the task runs on (one it skips for a
    missing capability does not count)."""
    for g in (generations.get(n) for n in spec.generations or generations.GENERATIONS):
        if any(n not in g.capabilities for n in spec.needs):
            continue
        for j, step in enumerate(spec.steps or ()):
            need = STEP_NEEDS.get(step["do"])
            if need and need not in g.capabilities:
                why = g.lacks_why.get(need, f"{g.name} has no {need}")
                raise r.fail(f"steps[{j}]", f"an {step['do']} step, which generation {g.name} cannot run ({why}); "
                                            f"add needs = [\"{need}\"] or leave {g.name} out of generations")
