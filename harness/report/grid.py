"""The verdict grid for the terminal: tags down, modes across."""

from __future__ import annotations

from typing import Any

SYMBOL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}


def column(cell: dict[str, Any]) -> str:
    """A cell's grid column: its mode, and its entry point when it is not the app's API."""
    entry = cell.get("entrypoint") or "api"
    return cell["mode"] if entry == "api" else f"{cell['mode']} ({entry})"


def cell_text(cell: dict[str, Any]) -> str:
    c = cell["connect"]
    text = str(SYMBOL.get(c["verdict"], c["verdict"]))
    if c.get("cause"):
        text += f" {c['cause']}"
    if c.get("seconds") is not None:
        text += f" {c['seconds']:.0f}s"
    tasks = cell.get("tasks") or []
    if tasks:
        text += f" tasks {sum(t.get('verdict') == 'pass' for t in tasks)}/{len(tasks)}"
    return text


def render(run: dict[str, Any]) -> str:
    cells = run["cells"]
    tags = list(dict.fromkeys(c["tag"] for c in cells))
    modes = list(dict.fromkeys(column(c) for c in cells))
    by = {(c["tag"], column(c)): c for c in cells}
    versions = {c["tag"]: c.get("resolved_version") for c in cells}
    rows = [["tag", *modes]]
    for t in tags:
        label = t if not versions.get(t) or versions[t] == t else f"{t} ({versions[t]})"
        rows.append([label, *[cell_text(by[(t, m)]) if (t, m) in by else "-" for m in modes]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
