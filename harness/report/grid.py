"""The verdict grid for the terminal: tags down, modes across."""

from __future__ import annotations

from harness.model import CellResult, Run
from harness.report.fleet import shown_cells

SYMBOL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}


def column(cell: CellResult) -> str:
    """A cell's grid column: its mode, and its entry point when it is not the app's API."""
    if cell.caller is not None:
        return f"{cell.mode} (via {cell.caller})"
    return cell.mode if cell.entrypoint == "api" else f"{cell.mode} ({cell.entrypoint})"


def task_summary(cell: CellResult) -> str | None:
    """`tasks 4/5`, and how many were skipped (not applicable here): `tasks 4/5 +2 skipped`."""
    ran = [t for t in cell.tasks if t.verdict != "skip"]
    skipped = len(cell.tasks) - len(ran)
    if not cell.tasks:
        return None
    text = f"tasks {sum(t.verdict == 'pass' for t in ran)}/{len(ran)}"
    return text + (f" +{skipped} skipped" if skipped else "")


def cell_text(cell: CellResult) -> str:
    c = cell.connect
    text = SYMBOL.get(c.verdict, str(c.verdict))
    if c.cause:
        text += f" {c.cause}" + (f" ({c.direction})" if c.direction else "")
    if c.seconds is not None:
        text += f" {c.seconds:.0f}s"
    if tasks := task_summary(cell):
        text += f" {tasks}"
    if cell.failed_as_expected:  # judged after the run: a verdict line as it lands is not yet
        text += " (expected)"
    return text + (" SURPRISE" if cell.surprise else "")


def label(tag: str, version: str | None) -> str:
    """`latest (1.11.0)`; a tag alone when it says it all."""
    return tag if not version or version == tag else f"{tag} ({version})"


def render(run: Run) -> str:
    """The grid; a merged run's has one row per release and host group."""
    cells = shown_cells(run)
    tags = list(dict.fromkeys(c.tag for c in cells))
    modes = list(dict.fromkeys(column(c) for c in cells))
    by = {(c.tag, column(c)): c for c in cells}
    versions = {c.tag: c.resolved_version for c in cells}
    rows = [["tag", *modes]]
    for t in tags:
        rows.append([label(t, versions.get(t)), *[cell_text(by[(t, m)]) if (t, m) in by else "-" for m in modes]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
