"""The options of a run, declared once (as nox declares its options in one set): `oh-matrix
run` and plain `pytest --matrix` build their parsers from this table and make the run's
workflow.Options from what they parsed, so the two front doors cannot drift. `-n`, `-k` and
the arguments after `--` are pytest's own and stay pytest's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import matrix, workflow


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


RUN: tuple[Option, ...] = (
    Option("--matrix", f"a matrix file, or a shipped one by name ({', '.join(matrix.packaged())}); "
                       f"`oh-matrix run` runs {matrix.DEFAULT!r} when none is named"),
    Option("--out", "report folder (default reports/<time>-<run>)"),
    Option("--backend", "where the images come from (docs/images.md)", {"choices": matrix.BACKENDS}),
    Option("--app-env", "an env var for every app container (repeatable)",
           {"action": "append", "default": [], "metavar": "KEY=VAL"}),
    Option("--only", "run only this cell (repeatable)", {"action": "append", "default": [], "metavar": "TAG-MODE"}),
    Option("--remedies", "rerun failed cells with the known fixes for their cause", {"action": "store_true"}),
    Option("--remedy", "with --remedies: try only this fix (repeatable; docs/remedies.md names them)",
           {"action": "append", "default": [], "metavar": "NAME"}),
    Option("--llm", "the LLM for the tasks: scripted (default without a key), real (LLM_MODEL, LLM_API_KEY[, "
                    "LLM_BASE_URL]), or replay (V0: recorded trajectories, no LLM at all)",
           {"choices": matrix.LLMS}),
    Option("--gate", "what fails the run: a cell that surprised, i.e. differs from what the matrix expects "
                     "or regressed since the last run here (surprises, the default); any cell that did not pass "
                     "(all-pass; failures is its old name); or only a regression (regressions)",
           {"choices": list(workflow.GATES), "default": "surprises"}),
    Option("--upgrade-from", "the release deployed today: show what moving to the newest target does, per mode",
           {"metavar": "TAG"}),
)


def add_to(add: Callable[..., Any]) -> None:
    """Declare every option with `add` (argparse's add_argument, or pytest's addoption)."""
    for o in RUN:
        add(o.flag, dest=o.dest, help=o.help, **o.kwargs)


def to_options(get: Callable[[str], Any], **pytest_own: Any) -> workflow.Options:
    """The run's Options from a parser's values (`get(dest)`), plus pytest's own (-n, -k, ...)."""
    values = {o.dest: get(o.dest) for o in RUN}
    values["matrix"] = values["matrix"] or matrix.DEFAULT
    return workflow.Options(**values, **pytest_own)
