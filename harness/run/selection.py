"""-k and the pytest arguments after `--`, checked by pytest itself before any image is
built: the cells' pytest run, collect-only, with no image and no container (the second
pytest of an `oh-matrix run`, the first being the cells' own)."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest

from harness import workflow
from harness.errors import InputError
from harness.plugin import CELLS, TASKS
from harness.run.cells import suite_args


class _Preselection:
    """The plugin of the collect-only run: the matrix's cells and tasks, as the real run's
    controller would stash them, and what survived -k."""

    def __init__(self, i: workflow.Inputs) -> None:
        self.i = i
        self.selected = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[CELLS], config.stash[TASKS] = self.i.cells, self.i.matrix.tasks

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


def check_selection(i: workflow.Inputs) -> None:
    """A bad expression or argument is bad input (exit 2), a selection of nothing exits 5
    (workflow.Stop), here and not after minutes of builds."""
    o = i.options
    if not o.k and not o.pytest_args:
        return  # --only was checked with the matrix; nothing else can deselect
    probe = _Preselection(i)
    args = [*suite_args(), "--collect-only", "-q", *(["-k", o.k] if o.k else []), *o.pytest_args]
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
        raise workflow.Stop(workflow.EXIT_NOTHING)
    if code != pytest.ExitCode.OK:
        raise InputError(f"{given}: refused by pytest: {_pytest_error(out.getvalue())}")
