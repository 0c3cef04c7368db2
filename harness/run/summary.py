"""The end of a run in the terminal, after the cells' lines: the grid, the recommendation,
what changed since the last run, the proven fixes, where the reports are, and the gate's
answer. The same lines end `oh-matrix run` and plain pytest's terminal summary."""

from __future__ import annotations

from harness import workflow
from harness.report import grid
from harness.report.upgrade import lines as upgrade_lines


def end_of_run(done: workflow.Finished, out: str) -> str:
    run = done.run
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
    for cell, remedy, path in workflow.fixes(run):  # a user's deployment: the change a real rerun proved
        lines.append(f"fix for {cell.id} ({remedy.name}, proven by a rerun): {out}/{path}")
        lines += [f"  {line}" for line in (remedy.fix or "").rstrip().splitlines()]
    lines.append(f"results: {out}/results.json  report: {out}/report.html  summary: {out}/summary.md")
    return "\n".join(lines + done.lines)
