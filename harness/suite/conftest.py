"""The matrix tests' fixtures: here, not in the plugin, so that a pytest that runs no matrix
gets no fixture of oh-matrix's (the plugin loads in every pytest of the environment)."""

from __future__ import annotations

import pytest

from harness.errors import InfraError
from harness.matrix import Cell
from harness.model import CellResult, TaskResult, Verdict
from harness.plugin import RUNNER, CellRunner, expect_as_pytest
from harness.secrets import scrub


def _runner(request: pytest.FixtureRequest) -> CellRunner:
    return request.config.stash[RUNNER]


@pytest.fixture
def connect_result(cell: Cell, request: pytest.FixtureRequest) -> CellResult:
    """Run the cell. Harness failures surface here, as a pytest *error*, not a test failure;
    a failure the matrix expects on this host, as pytest's xfail."""
    runner = _runner(request)
    result = runner.result(cell, request.node)
    expect_as_pytest(runner.matrix.expected(cell, runner.ctx.host), result)
    c = result.connect
    if c.verdict == Verdict.SKIP:
        pytest.skip(c.reason or "not applicable")
    if c.verdict == Verdict.ERROR:
        raise InfraError(scrub(f"{cell.id}: {c.cause}: " + "; ".join(e.text for e in c.evidence[:2])))
    return result


@pytest.fixture
def task_result(task_case: tuple[Cell, str], request: pytest.FixtureRequest) -> TaskResult:
    """One task's outcome on its cell; skipped where the runtime never connected."""
    cell, name = task_case
    result = _runner(request).result(cell, request.node)
    c = result.connect
    if c.verdict != Verdict.PASS:
        pytest.skip(f"runtime not connected: {c.cause or c.reason or c.verdict}")
    task = result.task(name)
    if task is None:
        pytest.skip(f"{name} was not run on {cell.id}")
    if task.verdict == Verdict.SKIP:
        pytest.skip(task.detail or "not applicable")
    if task.verdict == Verdict.ERROR:
        raise InfraError(scrub(f"{cell.id} {name}: {task.detail}"))
    return task
