"""The cells step of `oh-matrix run`: the matrix as a pytest run of the package's own tests
(harness/suite/), one test per cell and task, cells in parallel on xdist workers, their
results back on the test reports, collected by the plugin's controller."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import workflow
from harness.plugin import SUITE, MatrixController
from harness.run import signals


def suite_args() -> list[str]:
    """The package's own tests and ini, whatever folder the run starts from."""
    return [str(SUITE), "--rootdir", str(SUITE), "-c", str(SUITE / "pytest.ini"),
            # this process imported the plugin (and xdist) to hand pytest the controller
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]


def run_cells(p: workflow.Prepared) -> workflow.Found:
    """What the cells' pytest run found; `stop`: the exit code of a pytest outcome that ends
    the run before its results (workflow.PYTEST_CODES)."""
    o, ctx = p.inputs.options, p.ctx
    args = [*suite_args(), "--junitxml", str(Path(ctx.out) / "junit.xml"), "-o", "junit_family=xunit2"]
    args += ["-n", str(o.workers)] if o.workers > 1 else ["-p", "no:xdist"]
    if o.k:
        args += ["-k", o.k]
    args += o.pytest_args
    found = workflow.Found()
    try:
        code = int(pytest.main(args, plugins=[MatrixController(p, found)]))
    except BrokenPipeError:
        if not signals.hung_up():
            raise
        code = pytest.ExitCode.INTERRUPTED  # pytest could not print the interrupt: its terminal is gone
    if signals.hung_up():  # pytest's capture, on its way out, gave back the descriptors of the dead terminal
        signals.detach_output()
    found.pytest_code = code
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("oh-matrix: no cell or task test was selected (check --only and -k)", file=sys.stderr)
    found.stop = workflow.PYTEST_CODES.get(code)
    return found
