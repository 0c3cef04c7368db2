"""One real run, many assertions: the cells several release tests assert on, each run once.

A release test's minutes are its cells' boots, and most of those tests run a cell or two of
their own. Here a module (or the session) starts its cells at once, one thread each, before
its first test, and each test then asserts on its cell's result. The cells hold boot slots as
every cell does (harness/cells/admission.py, `CellPlan.boot_slots`): on a 2-core machine their
boots still come one at a time, and what overlaps is the rest (the next app's start waits for
the slot, not for the previous cell's tasks and teardown). Every cell started here has ended
before the fixture returns. A batch holds the host's turn shared (hostturn.py): a test that
changes the host (a firewall rule, a hosts line) or is about its load (a grace, burners) is
marked `alone` and runs while no batch or other release test does, on either worker. Cells
with a 1.x app run one at a time, across both workers (`one_1x_at_a_time`); 0.x cells and
CLI runs overlap them.

Cells that tests of several modules make alike (0.62 and 1.11 in host-gateway with nothing
set, 1.11 with a read-only workspace) are one cell per session (`Shared.run` by key): it runs
the tasks those tests ask of it, in one conversation, and each test reads its own tasks.
Under xdist they are one cell per session too (`across_workers`): the first worker to ask
claims it and leaves its result as JSON in a folder both workers see; the other reads it.
Each cell has a run id of its own: a test asserts that the cell left nothing under it, and
the session sweeps the ones its process ran at its end."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import docker
import hostturn

from harness import progress, tasks
from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host import cleanup
from harness.knobs import APP_ENV
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet
from harness.tasks import CATALOG, DEFAULT, Task, taskfile

T = TypeVar("T")
# A 1.x app lists every oh-agent-server-* container on its daemon as its own sandboxes (it pauses
# the oldest beyond its max_num_sandboxes, openhands/app_server/sandbox/docker_sandbox_service.py);
# two 1.11 cells of one batch at once were seen to lose each other's sandbox ("Sandbox not
# found", then "No such container" mid-task). A batch runs its 1.x cells one at a time.
_ONE_1X = threading.Lock()


def one_1x_at_a_time(fn: Callable[[str], T]) -> Callable[[str], T]:
    """`fn` (cells with a 1.x app on this daemon) runs while no other such cell of a batch does,
    in this process or another's (the release tests' two xdist workers: a file lock)."""
    def run(run_id: str) -> T:
        with _ONE_1X, hostturn.flocked("one-1x-cell.lock"):
            return fn(run_id)
    return run


def across_workers(fn: Callable[[str], T]) -> Callable[[str], T]:
    """Mark a session cell whose result is a CellResult: under xdist, the first worker to ask
    for it runs it and the others read its result (`Shared.run`), so it boots once per session."""
    fn.across_workers = True  # type: ignore[attr-defined]
    return fn


# The 1.x startup grace conftest.py gives release tests (SLOW_MACHINE_GRACE), set for the
# cells' threads: module and session fixtures run before the function-scoped one that sets it.
GRACE = "SANDBOX_STARTUP_GRACE_SECONDS=60"


@dataclass
class Ran(Generic[T]):
    """A cell (or a few run one after the other) under a run id of its own, and what it gave;
    `value` raises again what the cell's code raised, in each test that reads it."""

    run_id: str
    given: T | None = None
    error: BaseException | None = None
    seconds: float = 0.0  # from the start of its batch to its end

    @property
    def value(self) -> T:
        if self.error is not None:
            raise RuntimeError(f"the shared cell of run {self.run_id} raised: {self.error!r}") from self.error
        return self.given  # type: ignore[return-value]


class Shared:
    """The session's cells by key: `run` starts those not run yet, together, and waits for them."""

    def __init__(self, client: docker.DockerClient, folder: Path, workers: int = 8,
                 across: Path | None = None) -> None:
        """`folder`: where the cells' phase lines go (progress.log, as a run's), and the batches' times.
        `workers`: enough that 1.x cells waiting for their turn (one_1x_at_a_time) hold back no other.
        `across`: a folder every xdist worker of this session sees (None: one process), where the
        cells marked `across_workers` are claimed and their results left for the other workers."""
        self.client, self.folder, self.workers, self.across = client, folder, workers, across
        self.done: dict[str, Ran[Any]] = {}
        self.mine: set[str] = set()  # the run ids this process ran (and sweeps)
        progress.open_log(folder)

    def _claim(self, key: str) -> bool:
        """Whether this process runs `key` (always, with no other worker to share it with)."""
        if self.across is None:
            return True
        try:
            os.close(os.open(self.across / f"{key}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def _leave(self, key: str, ran: Ran[Any]) -> None:
        """`key`'s result for the other workers: the cell's result as JSON, or what it raised."""
        assert self.across is not None
        given = ran.given.model_dump(mode="json") if isinstance(ran.given, CellResult) else None
        data = {"run_id": ran.run_id, "seconds": ran.seconds, "result": given,
                "error": None if given is not None else repr(ran.error or f"not a CellResult: {ran.given!r}")}
        part = self.across / f"{key}.json.part"
        part.write_text(json.dumps(data))
        part.rename(self.across / f"{key}.json")

    def _read(self, key: str, timeout: float = 2400) -> Ran[Any]:
        """`key`'s result, left by the worker that claimed it (waiting for it to end)."""
        assert self.across is not None
        done, deadline = self.across / f"{key}.json", time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                return Ran("", error=TimeoutError(f"{key}: no result from the worker that claimed it "
                                                  f"after {timeout:.0f} s"))
            time.sleep(1)
        data = json.loads(done.read_text())
        if data["error"] is not None:
            return Ran(data["run_id"], error=RuntimeError(f"{key} (run on another worker): {data['error']}"))
        return Ran(data["run_id"], CellResult.model_validate(data["result"]), seconds=data["seconds"])

    @contextlib.contextmanager
    def _grace(self) -> Iterator[None]:
        if APP_ENV in os.environ:  # the caller's own choice (conftest.py keeps it too)
            yield
            return
        os.environ[APP_ENV] = GRACE
        try:
            yield
        finally:
            os.environ.pop(APP_ENV, None)

    def run(self, cells: dict[str, Callable[[str], T]]) -> dict[str, Ran[T]]:
        """Each callable gets a fresh run id; they run at once (up to `workers`), and every one
        has ended when this returns. A key run before in this session is not run again."""
        todo = {k: f for k, f in cells.items() if k not in self.done}
        elsewhere = {k for k, f in todo.items() if getattr(f, "across_workers", False) and not self._claim(k)}
        todo = {k: f for k, f in todo.items() if k not in elsewhere}
        if todo or elsewhere:
            t0 = time.monotonic()
            with hostturn.turn(alone=False), self._grace(), \
                    ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cell") as pool:
                ids = {k: f"test-{uuid.uuid4().hex}" for k in todo}
                self.mine |= set(ids.values())
                futures = {k: pool.submit(f, ids[k]) for k, f in todo.items()}
                for k, fut in futures.items():
                    try:
                        self.done[k] = Ran(ids[k], fut.result())
                    except Exception as e:  # raised again in the tests that read it
                        self.done[k] = Ran(ids[k], error=e)
                    self.done[k].seconds = round(time.monotonic() - t0, 1)  # ended by now (in submit order)
                    if getattr(todo[k], "across_workers", False) and self.across is not None:
                        self._leave(k, self.done[k])
                for k in elsewhere:
                    self.done[k] = self._read(k)
            took = ", ".join(f"{k} {self.done[k].seconds:.0f} s" + (" (another worker's)" if k in elsewhere else "")
                             for k in [*todo, *elsewhere])
            with (self.folder / "batches.log").open("a") as log:
                log.write(f"{time.strftime('%H:%M:%S')} {time.monotonic() - t0:.0f} s: {took}\n")
        return {k: self.done[k] for k in cells}

    def close(self) -> None:
        for run_id in self.mine:
            cleanup.sweep(self.client, run_id)


# -- the session's cells, which tests of several modules assert on -------------------------------

def state_checks(folder: str) -> str:
    """A file check and a command check on files the agent writes in `folder` (relative to its
    workspace; "" for the workspace itself): test_release_task_files.py's negative controls."""
    return f'''
[[tasks]]
name = "ro-file"
instruction = "Create {folder}out.txt in your working directory holding the line: written"
[tasks.check]
file = "{folder}out.txt"
content = "written\\n"
[[tasks.steps]]
create = "{folder}out.txt"
text = "written\\n"

[[tasks]]
name = "ro-run"
instruction = "Write a shell script {folder}hi.sh in your working directory that prints hi."
[tasks.check]
run = "bash {folder}hi.sh"
output = "hi"
[[tasks.steps]]
create = "{folder}hi.sh"
text = "echo hi\\n"
'''


def state_catalog(folder: str) -> dict[str, Task]:
    return {s.name: tasks.from_spec(s) for s in taskfile.parse(state_checks(folder), "ro.toml", "file:ro.toml")}


def plan(images: ImageSet, run_id: str, catalog: dict[str, Task], env: dict[str, str] | None = None,
         task_budget: float = 120) -> CellPlan:
    cell = Cell(Target(images.tag, images.api), ModeChoice("host-gateway"))
    return CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150,
                    tasks=list(catalog), catalog=catalog, task_budget=task_budget)


HOST_GATEWAY = "{}-host-gateway"  # the key of a release's plain host-gateway cell (tag)
READ_ONLY_V1 = "1.11-read-only-workspace"
# where V1 connects with its whole workspace read-only (test_release_task_files.py: READ_ONLY)
V1_READ_ONLY_MOUNT = "/workspace/project"


def host_gateway(images: ImageSet) -> Callable[[str], CellResult]:
    """The release in host-gateway with nothing set, as its documentation starts it, with the
    built-in catalog: test_release_v0/v1.py's documented command (its connect) and
    test_release_tasks.py's catalog (its tasks) in one cell. (OpenHands' upstream catalog
    needs a workspace of its own: t04-git-staging reads `git status`, where the built-in
    tasks' files show; test_release_task_files.py runs it on a cell of its own.)"""
    catalog = {n: CATALOG[n] for n in DEFAULT}

    def run(run_id: str) -> CellResult:
        return run_cell(plan(images, run_id, catalog, task_budget=90))
    return across_workers(one_1x_at_a_time(run) if images.api == "v1" else run)


def read_only_v1(images: ImageSet) -> Callable[[str], CellResult]:
    """1.11 with its workspace a host folder mounted read-only (SANDBOX_VOLUMES): create-file
    (test_release_tasks.py) and the state checks (test_release_task_files.py), none of which
    can write anything there."""
    catalog = {"create-file": CATALOG["create-file"]} | state_catalog("")

    def run(run_id: str) -> CellResult:
        with tempfile.TemporaryDirectory(prefix="oh-matrix-ro-") as d:
            os.chmod(d, 0o777)
            return run_cell(plan(images, run_id, catalog, {"SANDBOX_VOLUMES": f"{d}:{V1_READ_ONLY_MOUNT}:ro"}))
    return across_workers(one_1x_at_a_time(run))


def session_cells(v0: ImageSet, v1: ImageSet) -> dict[str, Callable[[str], CellResult]]:
    """The session's cells, to start with a module's own (they are run once per session)."""
    return {HOST_GATEWAY.format(v0.tag): host_gateway(v0), HOST_GATEWAY.format(v1.tag): host_gateway(v1),
            READ_ONLY_V1: read_only_v1(v1)}
