"""The HTML report: one self-contained page (inline CSS, no scripts, nothing fetched), so it
can be mailed, archived as a CI artifact or opened from disk and look the same.

Autoescape is on: evidence is whatever the containers printed.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from harness.model import CellResult, Evidence, Run
from harness.report.fleet import differing
from harness.report.grid import task_summary
from harness.report.markdown import EMOJI, clean, context, failed_as_expected, remedy_passed, secs, shell_lines

INLINE_CHARS = 1000  # a single line longer than this folds into <details> like a log tail


def anchor(cell_id: str) -> str:
    """A fragment id that survives any cell id (ids come from matrix files)."""
    return "cell-" + re.sub(r"[^A-Za-z0-9_.-]", "_", cell_id)


def verdict_class(cell: CellResult) -> str:
    """The colour of a cell: its connect verdict, or `partial` when it connected but a task failed."""
    verdict = str(cell.connect.verdict)
    if verdict == "pass" and not cell.tasks_passed:
        return "partial"
    return verdict if verdict in EMOJI else "unknown"


def evidence(items: list[Evidence]) -> list[dict[str, Any]]:
    """Evidence with colour codes stripped, and log tails marked so they fold."""
    out = []
    for e in items:
        text = clean(e.text).rstrip()
        lines = text.count("\n") + 1 if text else 0
        out.append({"source": str(e.source), "text": text, "lines": lines,
                    "block": lines > 1 or len(text) > INLINE_CHARS})
    return out


def fact(value: object) -> str:
    """A host fact or setting as one short string."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return "—" if value is None or value == "" else str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(differing=differing, anchor=anchor, verdict_class=verdict_class, evidence=evidence, fact=fact,
                       secs=secs, shell_lines=shell_lines, task_summary=task_summary, remedy_passed=remedy_passed,
                       failed_as_expected=failed_as_expected)
    return env


def render_html(run: Run) -> str:
    return _environment().get_template("report.html.j2").render(**context(run))
