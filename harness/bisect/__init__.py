"""`oh-matrix bisect`: since which release does a mode (or a task in it) behave otherwise?

Each step is a real run of one cell, `oh-matrix run` on a matrix of one release and one
mode, in a folder of the bisect's own (`<out>/steps/<version>/`); the images are the build
cache's, so a release built once is never built again. A step already run on this host
(the same mode, task, backend, harness code and host, see code_id and history.host_key) is reused
from its folder unless --fresh, and the report says which were. The search itself is
search.py; what the two neighbours differ in, as far as the harness can read it, is
differences.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import generations, modes, releases
from harness.bisect import differences
from harness.bisect.search import Finding, Probe, bisect, most_runs
from harness.errors import HarnessError, InputError
from harness.model import Cause, CellResult, Host, Verdict, read_run
from harness.paths import cache_root
from harness.results.history import host_key

EXIT_DECIDED, EXIT_UNDECIDED = 0, 1  # docs/exit-codes.md
# A cell the harness could not judge: the release is skipped, not compared.
_NOT_JUDGED = {Cause.IMAGE_UNAVAILABLE, Cause.HARNESS_ERROR}


@dataclass(frozen=True)
class Ask:
    """What the user asked: the cell to bisect and how to run it."""

    mode: str
    start: str
    end: str
    task: str | None
    backend: str
    out: Path
    fresh: bool
    harness: str  # oh-matrix's version and code (code_id): a step another harness ran is not reused


def code_id(version: str) -> str:
    """oh-matrix's version, without its local part, and a hash of its own code and data: a
    step run by other code is not this code's verdict. The version is git's as it was at
    install time (an editable install keeps it while the checkout moves on), and its local part
    (`+g<commit>`, `.d<date>` when the tree had changes) would change with the day a dirty tree
    was installed: the hash of the code, not the install, tells two harnesses apart."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".toml", ".json", ".j2"):
            h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return f"{version.partition('+')[0]}+{h.hexdigest()[:12]}"


def check(mode: str, start: str, end: str | None, task: str | None) -> None:
    """Bad input, before the index or the daemon is asked: one line, exit 2. A bisect walks
    the app server's releases (openhands-ai on the index); `end` None is its newest. A range
    that reaches Agent Canvas (`latest` today) crosses to another product, which no single
    change between two releases explains: said so, with what answers that question."""
    if mode not in modes.MODES:
        raise InputError(f"--mode {mode}: not a built-in mode ({', '.join(modes.MODES)})")
    for flag, tag in (("--from", start), ("--to", end)):
        if tag is None:
            continue
        try:
            gen = generations.for_tag(releases.check_tag(tag))
        except InputError as e:
            raise InputError(f"{flag} {tag}: {e}") from None
        if not gen.majors:
            raise InputError(f"{flag} {tag}: that is {gen.title.split(':')[0]}, another product than the app "
                             "server (openhands-ai) whose releases a bisect walks: a range from one to the other "
                             "crosses products, and no one change between two releases explains it. Leave --to "
                             "out (the app server's newest), and see the move itself in the upgrade view "
                             "(`upgrade_from` in a matrix with both, as the default matrix has)")
    if task is not None:
        from harness.tasks import CATALOG

        if task not in CATALOG:
            raise InputError(f"--task {task}: not a built-in task ({', '.join(CATALOG)})")


def step_matrix(ask: Ask, version: str) -> str:
    """The matrix of one step: the default matrix's budgets and settings, one release, one mode."""
    tasks = json.dumps([ask.task] if ask.task else [])
    return (f"# oh-matrix bisect: {version} in {ask.mode}\n[run]\nbackend = {json.dumps(ask.backend)}\n"
            f"connect_budget = 150\napp_budget = 150\ntask_budget = 120\ntasks = {tasks}\n\n"
            f'[env]\nLOG_ALL_EVENTS = "true"\n\n[[targets]]\ntag = "{version}"\n\n[modes.{ask.mode}]\n')


def outcome(cell: CellResult, task: str | None) -> tuple[str | None, str, tuple[str, ...]]:
    """(what is compared, the line people read, the evidence) of one step's cell."""
    c = cell.connect
    said = " ".join(str(x) for x in (c.verdict, c.cause, f"({c.direction})" if c.direction else None) if x)
    evidence = tuple(e.text for e in c.evidence[:4])
    if c.verdict in (Verdict.ERROR, Verdict.SKIP) or c.cause in _NOT_JUDGED:
        return None, f"not judged: {said}: {c.reason or (evidence[0] if evidence else '')}"[:300], evidence
    connect = f"{c.verdict}" + (f" {c.cause}" if c.cause else "")
    if task is None:
        return connect, said + (f" after {c.seconds:.1f} s" if c.seconds is not None else ""), evidence
    ran = next((t for t in cell.tasks if t.name == task), None)
    if ran is None:
        return f"connect {connect}", f"task {task} not run: connect {said}", evidence
    if ran.verdict in (Verdict.ERROR, Verdict.SKIP):
        return None, f"not judged: task {task} {ran.verdict}: {ran.detail or ''}"[:300], tuple(ran.evidence[:4])
    told = f"task {task} {ran.verdict}" + (f" {ran.cause}" if ran.cause else "")
    return told, told + (f": {ran.detail}" if ran.detail else ""), tuple(ran.evidence[:4]) or evidence


class Steps:
    """The probe the search calls: one real run per release, or its earlier run reused."""

    def __init__(self, ask: Ask, host: str) -> None:
        self.ask, self.host = ask, host
        self.index = cache_root() / "bisect" / "steps.jsonl"
        self.count = 0

    def _key(self, version: str) -> dict[str, str | None]:
        a = self.ask
        return {"host": self.host, "harness": a.harness, "mode": a.mode, "task": a.task, "backend": a.backend,
                "version": version}

    def _earlier(self, version: str) -> Path | None:
        if self.ask.fresh or not self.index.exists():
            return None
        key, found = self._key(version), None
        for line in self.index.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if {k: entry.get(k) for k in key} == key and (Path(entry["folder"]) / "results.json").is_file():
                found = Path(entry["folder"])  # the newest one wins
        return found

    def __call__(self, version: str) -> Probe:
        self.count += 1
        try:  # a release whose API no adapter knows is never built or driven: skipped at once
            generations.for_tag(version)
        except InputError as e:
            said, _, why = str(e).partition(": ")[2].partition(": ")
            print(f"[oh-matrix bisect] step {self.count}: {version}: not judged: refused, {said}",
                  file=sys.stderr, flush=True)
            return Probe(version, None, f"not judged: refused, {said}", (why,) if why else ())
        folder = self._earlier(version)
        reused = folder is not None
        if folder is None:
            folder = self._run(version)
        run = read_run(folder)
        if not run.cells:
            return Probe(version, None, f"not judged: the step's run in {folder} holds no cell", folder=str(folder))
        compared, line, evidence = outcome(run.cells[0], self.ask.task)
        probe = Probe(version, compared, line, evidence, str(folder), reused)
        print(f"[oh-matrix bisect] step {self.count}: {version}: {line}"
              + (f" (reused from {folder})" if reused else ""), file=sys.stderr, flush=True)
        return probe

    def _run(self, version: str) -> Path:
        folder = self.ask.out / "steps" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "matrix.toml").write_text(step_matrix(self.ask, version))
        print(f"[oh-matrix bisect] step {self.count}: running {version}-{self.ask.mode}"
              + (f" with task {self.ask.task}" if self.ask.task else ""), file=sys.stderr, flush=True)
        env = {k: v for k, v in os.environ.items() if k not in ("OH_MATRIX_RUN_ID", "OH_MATRIX_OWNER_PID")}
        # The step is `oh-matrix run` in a process of its own: its pytest, its run id and its
        # sweep are its own. It runs in a session of its own, so a Ctrl-C at the terminal
        # reaches it once, from here (wait_step), never twice: a second SIGINT would cut its
        # cell's teardown short and leave the app, its sidecars and its runtime behind.
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--matrix", str(folder / "matrix.toml"),
                                 "--out", str(folder), "-n", "1"], env=env, start_new_session=True)
        code = wait_step(proc)
        if code == 130:
            raise KeyboardInterrupt
        if code not in (0, 1) or not (folder / "results.json").is_file():
            raise HarnessError(f"bisect step {version}: oh-matrix run exited {code} without results "
                               f"(its output is above; its folder: {folder})")
        self.index.parent.mkdir(parents=True, exist_ok=True)
        with self.index.open("a") as f:
            f.write(json.dumps({**self._key(version), "folder": str(folder.resolve()), "at": time.time()}) + "\n")
        return folder


def wait_step(proc: subprocess.Popen[bytes]) -> int:
    """The step's exit code. An interrupt here (Ctrl-C; SIGTERM and SIGHUP while a bisect
    runs, see run) is passed to the step once, as SIGINT, and the step is waited for through
    any further one, so it removes what it made; then the interrupt goes on."""
    interrupted = False
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            if not interrupted:
                interrupted = True
                proc.send_signal(signal.SIGINT)
    if interrupted:
        raise KeyboardInterrupt
    return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def run(ask: Ask, host_facts: Host) -> int:
    """The bisect, its report written to `ask.out`; the exit code."""
    listed = releases.versions()
    span = releases.between(ask.start, ask.end, listed)
    ask.out.mkdir(parents=True, exist_ok=True)
    print(f"[oh-matrix bisect] {ask.mode}{' task ' + ask.task if ask.task else ''}: {len(span)} releases "
          f"{span[0]} .. {span[-1]} on the index; at most {most_runs(len(span))} runs",
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    steps = Steps(ask, host_key(host_facts))
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: as Ctrl-C, so the step is told
        signal.signal(sig, _interrupt)
    found = bisect(span, steps)
    seconds = time.monotonic() - t0
    diff = differences.between(found) if found.first_different and found.last_same else []
    write(ask, found, diff, seconds)
    print(text(ask, found, diff, seconds))
    return EXIT_DECIDED if found.first_different is not None or found.last_same is not None else EXIT_UNDECIDED


def text(ask: Ask, found: Finding, diff: list[str], seconds: float) -> str:
    """The short report: in the terminal and, as markdown, in bisect.md."""
    runs = sum(1 for p in found.probes if p.folder and not p.reused)
    reused = sum(1 for p in found.probes if p.reused)
    refused = len(found.probes) - runs - reused
    head = (f"bisect {ask.mode}{' task ' + ask.task if ask.task else ''} over {len(found.releases)} releases "
            f"{found.releases[0]} .. {found.releases[-1]}: {len(found.probes)} steps ({runs} run, {reused} reused"
            + (f", {refused} refused before a build" if refused else "") + f") in {seconds:.0f} s")
    lines = [head]
    if found.first_different is None:
        lines.append(f"no answer: {found.why_undecided}")
    else:
        assert found.last_same is not None
        lines.append(f"first release that differs from {found.releases[0]}: {found.first_different.version}")
        for label, p in (("before", found.last_same), ("since", found.first_different)):
            lines.append(f"  {label:6} {p.version:8} {p.line}")
            lines += [f"           {e[:200]}" for e in p.evidence[:2]]
        if found.skipped:
            why: dict[str, list[str]] = {}
            for p in sorted(found.skipped, key=lambda p: releases.key(p.version)):
                why.setdefault(p.line, []).append(p.version)
            lines.append("  could not be judged between them (the change may be in one of these): "
                         + "; ".join(f"{', '.join(vs)} ({line})" for line, vs in why.items()))
        lines += ["what differs between them, as the harness reads it:", *(f"  {d}" for d in diff)]
    lines.append("steps: " + ", ".join(f"{p.version} {p.outcome or 'not judged'}" for p in found.probes))
    return "\n".join(lines)


def write(ask: Ask, found: Finding, diff: list[str], seconds: float) -> None:
    from harness.output import write_text_atomic

    data = {"schema": "oh-matrix-bisect/1", "mode": ask.mode, "task": ask.task, "from": ask.start, "to": ask.end,
            "backend": ask.backend, "releases": found.releases, "seconds": round(seconds, 1),
            "steps": [asdict(p) for p in found.probes],
            "last_same": found.last_same.version if found.last_same else None,
            "first_different": found.first_different.version if found.first_different else None,
            "undecided": found.why_undecided, "differences": diff}
    write_text_atomic(ask.out / "bisect.json", json.dumps(data, indent=2) + "\n")
    write_text_atomic(ask.out / "bisect.md", "```\n" + text(ask, found, diff, seconds) + "\n```\n")
