"""The options of a run, declared once (as nox declares its options in one set): `oh-matrix
run` and plain `pytest --oh-matrix` build their parsers from this table and make the run's
workflow.Options from what they parsed, so the two front doors cannot drift. `-n`, `-k` and
the arguments after `--` are pytest's own and stay pytest's.

On pytest's side each flag and its dest carry the prefix `oh-` (`--oh-matrix`, `--oh-out`):
the plugin loads in every pytest of the environment (a `pytest11` entry point), where a bare
`--out` or `--only` could be another plugin's. Light on purpose: the plugin imports this
module at every pytest's start, so it imports nothing heavy (workflow only when asked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness import matrix

if TYPE_CHECKING:
    from harness import workflow

PYTEST_PREFIX = "oh-"  # pytest's side: --oh-matrix, dest oh_matrix

# --gate: what a finished run's exit code answers (workflow.outcome, docs/exit-codes.md).
# `failures` is the old name of `all-pass`, kept so that jobs written for it keep their meaning.
GATES = ("surprises", "all-pass", "regressions", "failures")


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def named(self, prefix: str) -> tuple[str, str]:
        """The flag and dest with a prefix: `--oh-out`, `oh_out`."""
        return f"--{prefix}{self.flag.removeprefix('--')}", f"{prefix.replace('-', '_')}{self.dest}"


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
           {"choices": list(GATES), "default": "surprises"}),
    Option("--upgrade-from", "the release deployed today: show what moving to the newest target does, per mode",
           {"metavar": "TAG"}),
)


def add_to(add: Callable[..., Any], prefix: str = "") -> None:
    """Declare every option with `add` (argparse's add_argument, or pytest's addoption with
    PYTEST_PREFIX)."""
    for o in RUN:
        flag, dest = o.named(prefix)
        add(flag, dest=dest, help=o.help, **o.kwargs)


def to_options(get: Callable[[str], Any], prefix: str = "", **pytest_own: Any) -> workflow.Options:
    """The run's Options from a parser's values (`get(dest)`), plus pytest's own (-n, -k, ...)."""
    from harness import workflow

    values = {o.dest: get(o.named(prefix)[1]) for o in RUN}
    values["matrix"] = values["matrix"] or matrix.DEFAULT
    return workflow.Options(**values, **pytest_own)
