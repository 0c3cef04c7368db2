"""The pytest plugin: options, one parametrized `cell` per matrix cell, results capture.

Thin on purpose: the work is in session.py / cell.py, which run without pytest.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from harness import remedies
from harness import session as run_session
from harness.errors import DockerUnavailable, InfraError, InputError, OutputError
from harness.matrix import Cell, Matrix, parse_app_env
from harness.matrix import load as load_matrix
from harness.report import grid
from harness.results import CellResult, read_cell

CTX = pytest.StashKey[run_session.RunContext]()
MATRIX = pytest.StashKey[Matrix]()
RUN = pytest.StashKey[dict[str, Any]]()
TASKS = pytest.StashKey[dict[str, list[str]]]()  # cell id -> the task tests selected for it
DONE = pytest.StashKey[dict[str, CellResult]]()  # cells this process has run or read
REPORTED = pytest.StashKey[set[str]]()  # controller: cells whose tests reported (even by a dead worker)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("oh-matrix")
    g.addoption("--matrix", help="matrix file (e.g. matrices/default.toml)")
    g.addoption("--out", help="report folder (default reports/<time>-<run>)")
    g.addoption("--backend", choices=["auto", "official", "pypi"], help="image backend")
    g.addoption("--app-env", action="append", default=[], metavar="KEY=VAL",
                help="env var for every app container (repeatable)")
    g.addoption("--only", action="append", default=[], metavar="TAG-MODE",
                help="run only this cell (repeatable)")
    g.addoption("--remedies", action="store_true",
                help="rerun each failed cell with the known fixes for its cause")
    g.addoption("--llm", choices=["auto", "scripted", "real"],
                help="the LLM for tasks: scripted (no key), real (LLM_MODEL, LLM_API_KEY[, LLM_BASE_URL])")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job, `kill`) takes the same path as Ctrl-C: every cell's
    # teardown and the run's final sweep still run.
    raise KeyboardInterrupt(f"signal {signum}")


_CONFIG: dict[str, pytest.Config] = {}  # pytest_runtest_logreport is not handed the config


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG["config"] = config
    path = config.getoption("matrix")
    if not path:
        return
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    if _is_worker(config):
        ctx = run_session.RunContext.load(os.environ["OH_MATRIX_OUT"])
        ctx.app_env = parse_app_env(config.getoption("app_env"))  # run.json has them redacted
        config.stash[CTX], config.stash[MATRIX] = ctx, load_matrix(ctx.matrix_path)
        return
    try:
        ctx, m = run_session.start(path, config.getoption("out"), config.getoption("backend"),
                               config.getoption("app_env"), config.getoption("only"),
                               config.getoption("remedies"), config.getoption("llm"))
    except InputError as e:
        pytest.exit(str(e), returncode=2)
    except DockerUnavailable as e:
        pytest.exit(str(e), returncode=3)
    os.environ["OH_MATRIX_OUT"] = ctx.out  # inherited by xdist workers, started after this
    config.stash[CTX], config.stash[MATRIX] = ctx, m


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wants_cell, wants_task = "cell" in metafunc.fixturenames, "task_case" in metafunc.fixturenames
    if not (wants_cell or wants_task):
        return
    config = metafunc.config
    if MATRIX not in config.stash:
        raise pytest.UsageError("the matrix tests need --matrix FILE (or run `oh-matrix run` / `nox`)")
    m, ctx = config.stash[MATRIX], config.stash[CTX]
    cells = m.select(ctx.only)
    if wants_cell:
        metafunc.parametrize("cell", cells, ids=[c.id for c in cells])
    else:
        cases = [(c, t) for c in cells for t in m.tasks]
        metafunc.parametrize("task_case", cases, ids=[f"{c.id}-{t}" for c, t in cases])


def pytest_collection_finish(session: pytest.Session) -> None:
    """Which tasks each cell must run: those whose tests survived -k and friends (every
    process that runs tests collects, xdist workers included)."""
    wanted: dict[str, list[str]] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "task_case" in callspec.params:
            cell, task = callspec.params["task_case"]
            wanted.setdefault(cell.id, []).append(task)
    session.config.stash[TASKS] = wanted


def cell_result(config: pytest.Config, cell: Cell) -> CellResult:
    """The cell's result, run once per run: its connect test and its task tests may land
    on different xdist workers, so the first to come runs it (under a per-cell file lock)
    and the others read the fragment it wrote."""
    done = config.stash.setdefault(DONE, {})
    if cell.id not in done:
        ctx, m = config.stash[CTX], config.stash[MATRIX]
        out = Path(ctx.out)
        (out / "locks").mkdir(parents=True, exist_ok=True)
        with FileLock(str(out / "locks" / f"{cell.id}.lock")):
            done[cell.id] = read_cell(out, cell.id) or run_session.run_one(
                ctx, m, cell, config.stash.get(TASKS, {}).get(cell.id, []))
    return done[cell.id]


@pytest.fixture
def connect_result(cell: Cell, request: pytest.FixtureRequest) -> CellResult:
    """Run the cell. Harness failures surface here, as a pytest *error*, not a test failure."""
    result = cell_result(request.config, cell)
    c = result.connect
    if c.verdict == "skip":
        pytest.skip(c.reason or "not applicable")
    if c.verdict == "error":
        raise InfraError(f"{cell.id}: {c.cause}: " + "; ".join(e.text for e in c.evidence[:2]))
    return result


@pytest.fixture
def task_result(task_case: tuple[Cell, str], request: pytest.FixtureRequest) -> dict[str, Any]:
    """One task's outcome on its cell; skipped where the runtime never connected."""
    cell, name = task_case
    result = cell_result(request.config, cell)
    c = result.connect
    if c.verdict != "pass":
        pytest.skip(f"runtime not connected: {c.cause or c.reason or c.verdict}")
    task = next((t for t in result.tasks if t["name"] == name), None)
    if task is None:
        pytest.skip(f"{name} was not run on {cell.id}")
    if task["verdict"] == "error":
        raise InfraError(f"{cell.id} {name}: {task['detail']}")
    return task


def describe_task(task: dict[str, Any]) -> str:
    lines = [f"{task['name']}: {task['verdict']} after {task['seconds']} s: {task['detail']}"]
    lines += [f"  {e}" for e in task.get("evidence") or []]
    return "\n".join(lines)


def describe_failure(result: CellResult) -> str:
    c = result.connect
    lines = [f"{result.id}: {c.cause} after {c.seconds} s (runtime URL {c.runtime_url})"]
    lines += [f"  [{e.source}] {e.text}" for e in c.evidence if e.source in ("harness", "probe", "api")]
    for r in result.remedies:
        cause = f" {r['cause']}" if r["cause"] else ""
        lines.append(f"  remedy {r['name']} ({remedies.settings(r)}): {r['verdict']}{cause}")
    return "\n".join(lines)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In the controller, every item's report arrives, xdist's "worker crashed" ones too:
    remember which cells ran, so a cell that lost its worker is not silently missing."""
    config = _CONFIG.get("config")
    if config is None or _is_worker(config) or MATRIX not in config.stash:
        return
    param = report.nodeid.rpartition("[")[2].rstrip("]")
    ids = {c.id for c in config.stash[MATRIX].cells()}
    cell = param if param in ids else next((i for i in sorted(ids, key=len, reverse=True)
                                            if param.startswith(i + "-")), None)
    if cell:
        config.stash.setdefault(REPORTED, set()).add(cell)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config) or CTX not in config.stash:
        return
    try:
        config.stash[RUN] = run_session.finish(config.stash[CTX], config.stash[MATRIX],
                                               config.stash.get(REPORTED, set()))
    except OutputError as e:  # e.g. a full disk: one line, not a traceback
        print(f"oh-matrix: {e}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if not run:
        return
    tr = terminalreporter
    tr.section("oh-matrix connect verdicts")
    tr.write_line(grid.render(run) if run["cells"] else "(no cell ran)")
    from harness.cli import recommendation_text

    tr.write_line(recommendation_text(run.get("recommendation") or {}))
    changes = run.get("changes") or {}
    for kind, word in (("regressions", "regression"), ("fixes", "fix")):
        for ch in changes.get(kind, []):
            tr.write_line(f"{word}: {ch['cell']} was {ch['before']['verdict']} in {ch['since'][:8]}, "
                          f"now {ch['now']['verdict']} {ch['now'].get('cause') or ''}".rstrip())
    out = Path(config.stash[CTX].out)
    tr.write_line(f"results: {out / 'results.json'}  report: {out / 'report.html'}  summary: {out / 'summary.md'}")
