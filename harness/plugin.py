"""The pytest plugin: one parametrized test per cell (`TAG-MODE`) and per cell and task
(`TAG-MODE-TASK`), run through pytest's and xdist's own channels (docs/architecture.md):

- the controller's RunContext reaches each worker in `workerinput` (pytest_configure_node);
- a cell's tests stay on one worker, in order (CellScheduling, xdist's loadscope with the
  cell as the scope), so the first of them runs the cell and the rest read its result;
- the result goes back to the controller on that test's report (`user_properties`), where
  the terminal shows it as it lands and the run collects it;
- a worker that dies mid-cell is named by xdist (pytest_handlecrashitem) and its cell is
  an error, not run again.

Thin on purpose: the work is in workflow.py and runner.py, which run without pytest.

Inert until asked: the `pytest11` entry point loads this module in every pytest of the
environment, so at load it imports nothing heavy (no docker, no testcontainers, whose import
disables its Ryuk for the user's own tests), declares its options with the prefix `oh-`
(options.py), and acts only in a run that names a matrix (`--oh-matrix`), an `oh-matrix run`,
or on the package's own matrix tests (harness/suite/, whose conftest holds their fixtures).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from harness import options

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


# Signals that stop a run from outside take the same path as Ctrl-C, so every cell's
# teardown and the run's final steps still run: SIGTERM (CI cancelling a job, `kill`) and
# SIGHUP (the terminal or session that started the run went away, as when a shell's
# background job is ended with it: by default it killed the run with its containers up).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


_hung_up = False  # a SIGHUP arrived: the terminal, or the pipe of whoever started the run, is gone


def _detach_output() -> None:
    """Standard output and error to /dev/null, as under nohup: after a hangup, what the
    teardown and the final steps print would raise BrokenPipeError and stop the run before
    its results are written."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    if signum == signal.SIGHUP:
        global _hung_up
        _hung_up = True
        _detach_output()
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _stop_as_interrupt() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _terminate_as_interrupt)


def _distributed(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.has_plugin("xdist")) and config.getoption("dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: the controller sent the context
        if WORKERINPUT in workerinput:
            from harness.context import RunContext

            _stop_as_interrupt()
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
    _stop_as_interrupt()
    if not _distributed(config):  # no workers: this process runs the cells too
        CellRunner(controller.state.context).register(config)


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

        self.ctx = ctx
        self.matrix = ctx.matrix()
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

    def __init__(self, state: workflow.State, plain: bool = False) -> None:
        self.state = state
        self.plain = plain  # under plain pytest: this plugin walks the workflow's steps
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
        state = workflow.State(o)
        try:
            workflow.walk(workflow.BEFORE_CELLS, state)
        except (InputError, DockerUnavailable) as e:  # one line; pytest's own exit code (docs/exit-codes.md)
            raise pytest.UsageError(scrub(str(e))) from None
        return cls(state, plain=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[CONTROLLER] = self
        m = self.state.matrix
        assert m is not None
        config.stash[CELLS], config.stash[TASKS] = self.state.cells, m.tasks
        self.cell_of = cell_index(self.state.cells, m.tasks)
        self.config = config
        if not config.option.collectonly and self.phases is None:
            # The terminal as it is now, between pytest's captures: with no workers the cells run
            # in this process, where a test's output is captured, and phase lines would land there.
            with contextlib.suppress(OSError, ValueError):
                self.phases = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT] = self.state.context.model_dump_json()

    @pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return _cell_scheduling()(config, log, self.cell_of)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every test's report reaches the controller (xdist's "worker crashed" ones too)."""
        cell = self.cell_of(report.nodeid)
        if cell:
            self.state.reported.add(cell)
        mine = [v for k, v in report.user_properties if k == PROPERTY]
        # Taken off the report before junitxml writes it: the results are results.json's.
        report.user_properties = [(k, v) for k, v in report.user_properties if k != PROPERTY]
        from harness.model import CellResult
        from harness.report import grid

        for raw in mine:
            result = CellResult.model_validate_json(str(raw))
            if result.id not in self.state.results:
                self.state.results[result.id] = result
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

        self.follower = progress.Follower(self.state.context.out, self.show_phase)
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
            self.state.reported.add(cell)

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
            return  # `oh-matrix run` walks the steps after the cells itself
        if session.config.option.collectonly:
            return  # nothing ran: no results to write, no line for the history
        from harness import workflow
        from harness.errors import OutputError
        from harness.secrets import scrub

        self.state.pytest_code = int(exitstatus)
        try:
            workflow.walk(workflow.AFTER_CELLS, self.state)
        except OutputError as e:  # e.g. a full disk: one line, not a traceback
            print(f"oh-matrix: {scrub(str(e))}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # the run finished: its gate decides, as for `oh-matrix run` (workflow.outcome)
            failed = workflow.outcome(self.state) != workflow.EXIT_OK
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.plain and self.state.run is not None:
            terminalreporter.section("oh-matrix connect verdicts")
            for line in end_of_run(self.state).splitlines():
                terminalreporter.write_line(line)


def end_of_run(s: workflow.State) -> str:
    """The grid, the recommendation, what changed since the last run, where the reports are."""
    from harness import workflow
    from harness.report import grid
    from harness.report.upgrade import lines as upgrade_lines

    run = s.run
    assert run is not None
    lines = upgrade_lines(run.upgrade) if run.upgrade else []  # asked for: shown first
    lines += [grid.render(run) if run.cells else "(no cell ran)", run.recommendation.text()]
    for kind, word in (("regressions", "regression"), ("fixes", "fix")):
        for ch in getattr(run.changes, kind):
            lines.append(f"{word}: {ch.cell} was {ch.before.verdict} in {ch.since[:8]}, "
                         f"now {ch.now.verdict} {ch.now.cause or ''}".rstrip())
    if run.changes.unreadable:
        lines.append(f"history: {len(run.changes.unreadable)} line(s) unreadable, compared without them "
                     "(the gate fails on this, but for --gate all-pass):")
        lines += [f"  {line}" for line in run.changes.unreadable]
    out = s.context.out
    for cell, remedy, path in workflow.fixes(run):  # a user's deployment: the change a real rerun proved
        lines.append(f"fix for {cell.id} ({remedy.name}, proven by a rerun): {out}/{path}")
        lines += [f"  {line}" for line in (remedy.fix or "").rstrip().splitlines()]
    lines.append(f"results: {out}/results.json  report: {out}/report.html  summary: {out}/summary.md")
    return "\n".join(lines + workflow.gate_lines(s))


class _Preselection:
    """The plugin of check_selection's collect-only run: the matrix's cells and tasks, as
    the real run's controller would stash them, and what survived -k."""

    def __init__(self, s: workflow.State) -> None:
        self.s = s
        self.selected = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        assert self.s.matrix is not None
        config.stash[CELLS], config.stash[TASKS] = self.s.cells, self.s.matrix.tasks

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = len(session.items)


def _pytest_error(text: str) -> str:
    """pytest's own one-line account of a usage error, from what it printed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:  # argparse's line ("pytest: error: unrecognized arguments: ...") over its usage line
        if ": error: " in line:
            return line.split(": error: ", 1)[1]
    for line in lines:
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ")
    return lines[-1] if lines else "refused"


def check_selection(s: workflow.State) -> int | None:
    """-k and the pytest arguments after --, checked by pytest itself before any image is
    built: the cells' pytest run, collect-only, with no image and no container. A bad
    expression or argument is bad input (exit 2), a selection of nothing exits 5, here and
    not after minutes of builds."""
    from harness import workflow
    from harness.errors import InputError

    o = s.options
    if not o.k and not o.pytest_args:
        return None  # --only was checked with the matrix; nothing else can deselect
    probe = _Preselection(s)
    args = [*_suite_args(), "--collect-only", "-q", *(["-k", o.k] if o.k else []), *o.pytest_args]
    out = io.StringIO()
    given = " ".join([*(["-k", repr(o.k)] if o.k else []), *o.pytest_args])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = pytest.main(args, plugins=[probe])
    except Exception as e:  # pytest < 8.4 raises a bad `-p PLUGIN` instead of reporting it
        raise InputError(f"{given}: refused by pytest: {e}") from None
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or (code == pytest.ExitCode.OK and not probe.selected):
        print("oh-matrix: no cell or task test was selected (check --only, -k and the pytest arguments)",
              file=sys.stderr)
        return workflow.EXIT_NOTHING
    if code != pytest.ExitCode.OK:
        raise InputError(f"{given}: refused by pytest: {_pytest_error(out.getvalue())}")
    return None


def _suite_args() -> list[str]:
    """The package's own tests and ini, whatever folder the run starts from."""
    return [str(SUITE), "--rootdir", str(SUITE), "-c", str(SUITE / "pytest.ini"),
            # this process imported the plugin (and xdist) to hand pytest the controller
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]


def run_cells(s: workflow.State) -> int | None:
    """The workflow's cells step: the matrix as a pytest run, one test per cell and task,
    cells in parallel on xdist workers, results back on the test reports."""
    from harness import workflow

    o, ctx = s.options, s.context
    args = [*_suite_args(), "--junitxml", str(Path(ctx.out) / "junit.xml"), "-o", "junit_family=xunit2"]
    args += ["-n", str(o.workers)] if o.workers > 1 else ["-p", "no:xdist"]
    if o.k:
        args += ["-k", o.k]
    args += o.pytest_args
    try:
        code = int(pytest.main(args, plugins=[MatrixController(s)]))
    except BrokenPipeError:
        if not _hung_up:
            raise
        code = pytest.ExitCode.INTERRUPTED  # pytest could not print the interrupt: its terminal is gone
    if _hung_up:  # pytest's capture, on its way out, gave back the descriptors of the dead terminal
        _detach_output()
    s.pytest_code = code
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("oh-matrix: no cell or task test was selected (check --only and -k)", file=sys.stderr)
    return workflow.PYTEST_CODES.get(code)


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
