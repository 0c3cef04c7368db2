"""The HTML report: one self-contained page (inline CSS, no scripts, nothing fetched), so it
can be mailed, archived as a CI artifact or opened from disk and look the same.

Autoescape is on: evidence is whatever the containers printed.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from harness.model import CellResult, Evidence, Night, Run, oh_matrix_label
from harness.report.fleet import differing, history_rows
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


STEP, BAR, CHART = 14, 10, 48  # a night's width, its bar's, the seconds chart's height (px)


def _night_title(n: Night) -> str:
    secs_text = f", {n.seconds:.0f} s" if n.seconds is not None else ""
    grace = f" (grace {n.grace:.0f} s)" if n.grace else ""
    when = n.finished_at[:16].replace("T", " ")
    return f"{when} {n.run_id[:8]}: {n.verdict} {n.cause or ''}".rstrip() + secs_text + grace


def night_chart(cell: CellResult) -> dict[str, Any]:
    """The cell's nights as the report draws them: one column per run on its host, oldest
    first, a square in its verdict's colour above a bar of its connect seconds, and the
    release's own startup grace as a dashed mark where it has one (all in pixels)."""
    top = max([n.seconds or 0 for n in cell.nights] + [n.grace or 0 for n in cell.nights] + [1.0])
    def y(seconds: float) -> float:  # below the verdict's square, 0 s at the bottom
        return round(12 + CHART - seconds / top * CHART, 1)

    points = [{"x": i * STEP, "verdict": str(n.verdict), "title": _night_title(n), "y": y(n.seconds or 0),
               "h": round(12 + CHART - y(n.seconds or 0), 1), "grace": y(n.grace) if n.grace else None}
              for i, n in enumerate(cell.nights)]
    return {"width": len(points) * STEP, "height": 14 + CHART, "bar": BAR, "points": points,
            "top": f"{top:.0f}", "graced": any(n.grace for n in cell.nights)}


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
                       oh_matrix_label=oh_matrix_label, failed_as_expected=failed_as_expected, night_chart=night_chart)
    return env


def render_html(run: Run) -> str:
    return _environment().get_template("report.html.j2").render(**context(run), history=history_rows(run))
