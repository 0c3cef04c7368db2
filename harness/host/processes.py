"""Processes the harness starts on this machine (the native install's launcher and what it
starts), labelled as its containers are, and the sweep that ends them.

A process carries no label, but every process inherits its parent's environment: the
launcher is started with `OH_MATRIX_PROCESS=<owner>/<run>/<cell>` in it, and so every
process it starts (the agent-server and automation under `uvx`, the ingress, the static
server: each in a process group of its own, as the launcher spawns them `detached`) carries
the same value. That is the registry a sweep reads (/proc/PID/environ), as it reads a
container's labels: a process whose owner is gone is ended, whole process groups at once,
even when the worker that started it was killed before it could end them itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "OH_MATRIX_PROCESS"
PROC = Path("/proc")


@dataclass(frozen=True)
class Marked:
    """One process of the harness's, as /proc shows it."""

    pid: int
    pgid: int
    owner: str
    run_id: str
    cell_id: str
    command: str


def marker(owner: str, run_id: str, cell_id: str) -> dict[str, str]:
    """The environment entry every process of this cell inherits (owner: cleanup.owner())."""
    return {MARKER: f"{owner}/{run_id}/{cell_id}"}


def parse(value: str) -> tuple[str, str, str] | None:
    """(owner, run, cell) of a marker's value; None when it is not one."""
    parts = value.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def _environ(pid_dir: Path) -> dict[str, str]:
    try:
        raw = (pid_dir / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def find(run_id: str | None = None, cell_id: str | None = None, proc: Path = PROC) -> list[Marked]:
    """Every live process carrying the marker (of one run, of one cell)."""
    found = []
    for d in proc.iterdir() if proc.is_dir() else ():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        value = _environ(d).get(MARKER)
        said = parse(value) if value else None
        if said is None or (run_id and said[1] != run_id) or (cell_id and said[2] != cell_id):
            continue
        try:
            pgid = os.getpgid(int(d.name))
            command = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ProcessLookupError):
            continue
        found.append(Marked(int(d.name), pgid, *said, command))
    return found


def end(processes: Sequence[Marked], grace: float = 5.0) -> list[str]:
    """End the process groups of `processes`: SIGTERM (the launcher then stops its services
    itself), SIGKILL to whatever is left after `grace`. What was ended, in words."""
    groups = sorted({p.pgid for p in processes if p.pgid > 1 and p.pgid != os.getpgid(0)})
    for g in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(g, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(g) for g in groups):
        time.sleep(0.2)
    for g in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(g, signal.SIGKILL)
    return [f"{p.pid} ({p.command[:80]})" for p in processes]


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(alive: Callable[[str], bool], run_id: str | None = None, include_live: bool = False,
          proc: Path = PROC) -> list[str]:
    """End what finished or crashed runs left running on this machine: the processes of
    `run_id` (a cell's or run's own teardown), else those whose owner is gone (`alive`, with
    `include_live` every one). The same rule as the containers' (cleanup.sweep)."""
    chosen = [p for p in find(run_id, proc=proc) if run_id or include_live or not alive(p.owner)]
    ended = end(chosen) if chosen else []
    # a process that started one more while the first were ending: once more
    if chosen and (again := [p for p in find(run_id, proc=proc) if p.run_id in {c.run_id for c in chosen}]):
        ended += end(again, grace=1.0)
    return ended


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], cwd: Path, log: Path, owner: str, run_id: str,
            cell_id: str) -> Iterator[subprocess.Popen[bytes]]:
    """A host process in a session and process group of its own, its output in `log`,
    marked as the cell's; on the way out (success, failure, Ctrl-C) every process of the cell
    is ended, its own group and the groups it started alike."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env={**env, **marker(owner, run_id, cell_id)}, cwd=cwd, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        mine = find(run_id, cell_id)
        if process.poll() is None:  # the launcher itself first: it stops its services on SIGTERM
            mine.append(Marked(process.pid, process.pid, "", run_id, cell_id, " ".join(argv)))
        end(mine)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if left := find(run_id, cell_id):
            end(left, grace=1.0)
