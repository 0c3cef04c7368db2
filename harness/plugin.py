"""The pytest plugin: one parametrized test per cell (`TAG-MODE`) and per cell and task
(`TAG-MODE-TASK`), run through pytest's and xdist's own channels (docs/architecture.md):

- the controller's RunContext reaches each worker in `workerinput` (pytest_configure_node);
- a cell's tests stay on one worker, in order (CellScheduling, xdist's loadscope with the
  cell as the scope), so the first of them runs the cell and the rest read its result;
- the result goes back to the controller on that test's report (`user_properties`), where
  the terminal shows it as it lands and the run collects it;
- a worker that dies mid-cell is named by xdist (pytest_handlecrashitem) and its cell is
  an error, not run again.

Thin on purpose: hooks and what they hold. The run is workflow.py's (`prepare` before the
cells, `finish` after them, the gate decided there), the cells are runner.py's, both without
pytest; the stop signals, the cells' pytest run, the check of the selection and the end of
the run in the terminal live in harness/run/.

Inert until asked: the `pytest11` entry point loads this module in every pytest of the
environment, so at load it imports nothing heavy (no docker, no testcontainers, whose import
disables its Ryuk for the user's own tests), declares its options with the prefix `oh-`
(options.py), and acts only in a run that names a matrix (`--oh-matrix`), an `oh-matrix run`,
or on the package's own matrix tests (harness/suite/, whose conftest holds their fixtures).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from harness import options
from harness.run import signals

if TYPE_CHECKING:
    from harness import progress, workflow
    from harness.context import RunContext
    from harness.matrix import Cell
    from harness.model import CellResult, Expected, TaskResult

SUITE = Path(__file__).resolve().parent / "suite"  # the matrix tests (test_connect, test_tasks)
PROPERTY = "oh-matrix-cell"  # the user_properties key a cell's result travels under
WORKERINPUT = "oh_matrix_context"
CELLS = pytest.StashKey["list[Cell]"]()  # the selected cells, in any process that collects
TASKS = pytest.StashKey[tuple[str, ...]]()  # the matrix's tasks, likewise
RUNNER = pytest.StashKey["CellRunner"]()
CONTROLLER = pytest.StashKey["MatrixController"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    # the same table as `oh-matrix run`'s, prefixed: --oh-matrix, --oh-out, ...
    options.add_to(parser.getgroup("oh-matrix").addoption, options.PYTEST_PREFIX)


def _distributed(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.has_plugin("xdist")) and config.getoption("dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: the controller sent the context
        if WORKERINPUT in workerinput:
            from harness.context import RunContext

            signals.stop_as_interrupt()
            CellRunner(RunContext.model_validate_json(workerinput[WORKERINPUT])).register(config)
        return
    controller = config.stash.get(CONTROLLER, None)
    if controller is None:
        if not config.getoption(options.RUN[0].named(options.PYTEST_PREFIX)[1]):
            return  # a pytest that names no matrix: none of this plugin's business
        controller = MatrixController.from_options(config)  # `pytest --oh-matrix FILE`: steps before the cells here
        config.pluginmanager.register(controller, "oh-matrix-controller")  # pytest_configure is replayed to it
        if config.args_source != pytest.Config.ArgsSource.ARGS:  # no test path given: the package's matrix tests
            config.args = [str(SUITE)]
    signals.stop_as_interrupt()
    if not _distributed(config):  # no workers: this process runs the cells too
        CellRunner(controller.prepared.ctx).register(config)


def cell_index(cells: list[Cell], tasks: tuple[str, ...]) -> Callable[[str], str | None]:
    """nodeid -> the cell it belongs to, from the test ids this plugin gives (`CELL`,
    `CELL-TASK`): exact lookups, no guessing from a prefix."""
    ids = {c.id: c.id for c in cells} | {f"{c.id}-{t}": c.id for c in cells for t in tasks}

    def cell_of(nodeid: str) -> str | None:
        _, sep, param = nodeid.partition("[")
        return ids.get(param.removesuffix("]")) if sep else None

    return cell_of


def _in_suite(path: Path) -> bool:
    """A test of the package's own matrix tests (a user's test may have a `cell` argument too)."""
    return path.is_relative_to(SUITE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wants_cell, wants_task = "cell" in metafunc.fixturenames, "task_case" in metafunc.fixturenames
    if not (wants_cell or wants_task) or not _in_suite(metafunc.definition.path):
        return
    cells = metafunc.config.stash.get(CELLS, None)
    if cells is None:
        raise pytest.UsageError("the matrix tests need --oh-matrix FILE (or run `oh-matrix run` / `nox`)")
    if wants_cell:
        metafunc.parametrize("cell", cells, ids=[c.id for c in cells])
    else:
        cases = [(c, t) for c in cells for t in metafunc.config.stash[TASKS]]
        metafunc.parametrize("task_case", cases, ids=[f"{c.id}-{t}" for c, t in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A matrix with no tasks (`tasks = []`) has no task tests: pytest's placeholder for an
    empty parameter set would be a test of nothing, so it is deselected."""
    params = {i: getattr(getattr(i, "callspec", None), "params", {}) for i in items if _in_suite(i.path)}
    empty = [i for i, p in params.items() if "task_case" in p and not isinstance(p["task_case"], tuple)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]


@functools.cache
def _cell_scheduling() -> type[Any]:
    """CellScheduling, made when a distributed matrix run first asks: xdist's scheduler
    module is not imported by a pytest that runs no matrix."""
    from xdist.scheduler import LoadScopeScheduling

    class CellScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's loadscope with a cell as the scope: a cell's connect and task tests go to one
        worker, in collection order. A cell whose worker died is not sent elsewhere (it would run
        the whole cell again, and a cell that kills its worker would kill the next one too)."""

        def __init__(self, config: pytest.Config, log: Any, cell_of: Callable[[str], str | None]) -> None:
            super().__init__(config, log)
            self.cell_of = cell_of

        def _split_scope(self, nodeid: str) -> str:
            return self.cell_of(nodeid) or nodeid

        def remove_node(self, node: Any) -> str | None:
            workload = self.assigned_work.pop(node)
            if not self._pending_of(workload):
                return None
            crashitem: str = next(n for unit in workload.values() for n, done in unit.items() if not done)
            lost = self._split_scope(crashitem)
            for scope, unit in workload.items():  # units it had not started go back to the queue
                if scope != lost and not any(unit.values()):
                    self.workqueue[scope] = unit
            for other in self.assigned_work:
                self._reschedule(other)
            return crashitem

    return CellScheduling


class CellRunner:
    """Runs cells where the tests run (a worker, or the only process): each cell once, on
    its first test; the result rides back on that test's report."""

    def __init__(self, ctx: RunContext) -> None:
        from harness import progress
        from harness.deployments import commands

        self.ctx = ctx
        self.matrix = ctx.matrix(commands.run)
        progress.open_log(ctx.out)  # this process's phase lines, for the controller to show
        self.results: dict[str, CellResult] = {}
        self.tasks: dict[str, list[str]] = {}  # cell id -> its task tests that survived -k

    def register(self, config: pytest.Config) -> None:
        config.stash[RUNNER] = self
        config.stash[CELLS] = self.matrix.select(self.ctx.only)
        config.stash[TASKS] = self.matrix.tasks
        config.pluginmanager.register(self, "oh-matrix-runner")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and "task_case" in callspec.params:
                cell, task = callspec.params["task_case"]
                self.tasks.setdefault(cell.id, []).append(task)

    def result(self, cell: Cell, node: pytest.Item) -> CellResult:
        from harness.cells.runner import run_one

        if cell.id not in self.results:
            self.results[cell.id] = r = run_one(self.ctx, self.matrix, cell, self.tasks.get(cell.id, []))
            node.user_properties.append((PROPERTY, r.model_dump_json()))
        return self.results[cell.id]


class MatrixController:
    """The controller's side: hands the context to workers, keeps a cell's tests together,
    collects results from the reports, shows each verdict as it lands."""

    def __init__(self, prepared: workflow.Prepared, found: workflow.Found, plain: bool = False) -> None:
        self.prepared = prepared
        self.found = found  # what the cells step brings back: filled from the reports as they land
        self.plain = plain  # under plain pytest: this plugin calls the workflow's prepare and finish
        self.finished: workflow.Finished | None = None
        self.cell_of: Callable[[str], str | None] = lambda nodeid: None
        self.config: pytest.Config | None = None
        self.follower: progress.Follower | None = None
        self.phases: IO[str] | None = None  # where phase lines are written (the terminal, duplicated)
        self.shown = threading.Lock()  # verdict lines (main thread) and phase lines (follower)

    @classmethod
    def from_options(cls, config: pytest.Config) -> MatrixController:
        from harness import workflow
        from harness.errors import DockerUnavailable, InputError
        from harness.secrets import scrub

        o = options.to_options(config.getoption, options.PYTEST_PREFIX)
        try:
            prepared = workflow.prepare(o)
        except (InputError, DockerUnavailable) as e:  # one line; pytest's own exit code (docs/exit-codes.md)
            raise pytest.UsageError(scrub(str(e))) from None
        return cls(prepared, workflow.Found(), plain=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[CONTROLLER] = self
        i = self.prepared.inputs
        config.stash[CELLS], config.stash[TASKS] = i.cells, i.matrix.tasks
        self.cell_of = cell_index(i.cells, i.matrix.tasks)
        self.config = config
        if not config.option.collectonly and self.phases is None:
            # The terminal as it is now, between pytest's captures: with no workers the cells run
            # in this process, where a test's output is captured, and phase lines would land there.
            with contextlib.suppress(OSError, ValueError):
                self.phases = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT] = self.prepared.ctx.model_dump_json()

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return _cell_scheduling()(config, log, self.cell_of)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every test's report reaches the controller (xdist's "worker crashed" ones too)."""
        cell = self.cell_of(report.nodeid)
        if cell:
            self.found.reported.add(cell)
        mine = [v for k, v in report.user_properties if k == PROPERTY]
        # Taken off the report before junitxml writes it: the results are results.json's.
        report.user_properties = [(k, v) for k, v in report.user_properties if k != PROPERTY]
        from harness.model import CellResult
        from harness.report import grid

        for raw in mine:
            result = CellResult.model_validate_json(str(raw))
            if result.id not in self.found.results:
                self.found.results[result.id] = result
                self.show(f"{result.id:<32} {grid.cell_text(result)}")

    def show(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter") if self.config else None
        if terminal is not None:
            with self.shown:
                terminal.ensure_newline()
                terminal.write_line(line)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Each cell's phases as they happen, between the verdict lines (progress.py)."""
        if session.config.option.collectonly:
            return
        from harness import progress

        self.follower = progress.Follower(self.prepared.ctx.out, self.show_phase)
        self.follower.start()

    def show_phase(self, line: str) -> None:
        if self.phases is None:
            self.show(f"  {line}")
            return
        terminal = self.config.pluginmanager.get_plugin("terminalreporter") if self.config else None
        with self.shown, contextlib.suppress(OSError, ValueError):  # a terminal gone (SIGHUP): lines are in the file
            if terminal is not None and getattr(terminal, "currentfspath", None):
                self.phases.write("\n")  # pytest left a test file's name on the line
                terminal.currentfspath = None
            self.phases.write(f"  {line}\n")

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        if cell := self.cell_of(crashitem):
            self.found.reported.add(cell)

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """No progress dots for cells: their verdict lines are the progress."""
        if not self.cell_of(report.nodeid) or config.get_verbosity() > 0:
            return None
        if report.failed:  # as pytest counts them: a failed setup is an error
            category = "failed" if report.when == "call" else "error"
        else:
            category = "" if report.passed and report.when != "call" else report.outcome
        return category, "", category.upper()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.follower is not None:  # the last phase lines, before the end of the run
            self.follower.stop()
            self.follower = None
        if self.phases is not None:
            with contextlib.suppress(OSError, ValueError):
                self.phases.close()
            self.phases = None
        if not self.plain:
            return  # `oh-matrix run` calls workflow.finish itself
        if session.config.option.collectonly:
            return  # nothing ran: no results to write, no line for the history
        from harness import workflow
        from harness.secrets import scrub

        self.found.pytest_code = int(exitstatus)
        self.finished = workflow.finish(self.prepared, self.found)
        if self.finished.error is not None:  # e.g. a full disk: one line, not a traceback
            print(f"oh-matrix: {scrub(self.finished.error)}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # the run finished: the gate decided, as for `oh-matrix run` (workflow.finish)
            failed = self.finished.gate != workflow.EXIT_OK
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.plain and self.finished is not None:
            from harness.run.summary import end_of_run

            terminalreporter.section("oh-matrix connect verdicts")
            for line in end_of_run(self.finished, self.prepared.ctx.out).splitlines():
                terminalreporter.write_line(line)


def expect_as_pytest(expected: Expected, result: CellResult) -> None:
    """What the matrix expects, as pytest's xfail: a cell that fails as expected is xfailed,
    with the reason; one expected to fail strictly that passes fails its test."""
    from harness.model import Verdict

    if expected.verdict == Verdict.PASS:
        return
    said = expected.surprise(result)
    if said is None and result.connect.verdict != Verdict.PASS:
        pytest.xfail(f"{result.id}: {result.outcome}, as expected on this host: {expected.reason}")
    if said is not None and result.connect.verdict == Verdict.PASS:
        pytest.fail(f"{result.id}: {said}: {expected.reason}", pytrace=False)


def describe_task(task: TaskResult) -> str:
    lines = [f"{task.name}: {task.verdict} after {task.seconds} s: {task.detail}"]
    return "\n".join(lines + [f"  {e}" for e in task.evidence])


def describe_failure(result: CellResult) -> str:
    c = result.connect
    lines = [f"{result.id}: {c.cause} after {c.seconds} s (runtime URL {c.runtime_url})"]
    lines += [f"  [{e.source}] {e.text}" for e in c.evidence if e.source in ("harness", "probe", "api")]
    for r in result.remedies:
        cause = f" {r.cause}" if r.cause else ""
        lines.append(f"  remedy {r.name} ({r.settings()}): {r.verdict}{cause}")
    return "\n".join(lines)
