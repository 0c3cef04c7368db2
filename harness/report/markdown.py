"""The Markdown summary (summary.md, and the GitHub step summary), plus the run view both
renderers share: the grid layout, normalized cells, and text clean-up.

GitHub caps a step summary at 1 MiB, so this page carries one short line of evidence per
failure and never a log tail; the HTML report has the rest.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2

from harness.model import CellResult, Run, TaskResult, oh_matrix_label, strip_ansi
from harness.model import first_line as _first_line
from harness.report.fleet import differing, group_oh_matrix, same_cells, shown_cells
from harness.report.grid import column, label, task_summary

EMOJI = {"pass": "✅", "fail": "❌", "error": "⚠️", "skip": "⏭️"}  # grid.SYMBOL, for Markdown
EVIDENCE_CHARS = 200
# `docker run` options that take a value: each goes on its own line in a displayed command.
VALUE_OPTIONS = frozenset({"-e", "--env", "--env-file", "-v", "--volume", "-p", "--publish", "--network",
                           "--add-host", "--name"})

clean = strip_ansi  # older runs stored log tails with colour codes



# What the harness reads on this machine and so cannot read for a remote daemon's host.
NOT_READ_REMOTE = "this machine's firewall rules, userland proxy and load are not the daemon host's (remote daemon)"


def host_facts(run: Run) -> dict[str, Any]:
    """The Docker host's facts as the report lists them, with what was not read, and why."""
    facts = run.host.model_dump(exclude_defaults=True)
    if run.host.remote:
        facts["not_read"] = NOT_READ_REMOTE
    return facts

def truncate(text: str, limit: int = EVIDENCE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str | None) -> str:
    """The first non-blank line, cut to a size a summary can afford."""
    return _first_line(text, EVIDENCE_CHARS)


def headline(cell: CellResult) -> str | None:
    """The cell's first non-empty evidence, as `source: line`."""
    return cell.connect.headline()


def secs(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.0f}s"


def remedy_passed(cell: CellResult) -> bool:
    return any(r.verdict == "pass" for r in cell.remedies)


def shell_lines(command: str) -> str:
    """A long one-line command split one option per line with `\\`, still pasteable."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return command
    commands: list[list[list[str]]] = [[[]]]  # commands -> lines -> tokens
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "&&":
            commands[-1][-1].append(tok)
            commands.append([[]])
        elif tok in VALUE_OPTIONS and i + 1 < len(tokens):
            commands[-1] += [[tok, tokens[i + 1]], []]
            i += 1
        else:
            commands[-1][-1].append(tok)
        i += 1
    out: list[str] = []
    for cmd in commands:
        lines = [" ".join(t if t == "&&" else _quote(t) for t in line) for line in cmd if line]
        out += [("  " if j else "") + line + (" \\" if j < len(lines) - 1 else "") for j, line in enumerate(lines)]
    return "\n".join(out)


def _quote(word: str) -> str:
    """shlex.quote, with a leading `~/` left outside the quotes for the shell to expand, as in
    the line it came from (`-v ~/.openhands:/.openhands`, which quoted would name a folder `~`)."""
    return "~/" + shlex.quote(word[2:]) if word.startswith("~/") else shlex.quote(word)


@dataclass(frozen=True)
class Grid:
    """Tags down (in matrix order), modes across."""

    tags: list[str]
    modes: list[str]
    cells: dict[tuple[str, str], CellResult]
    labels: dict[str, str]  # tag -> "latest (1.11.0)"

    def rows(self) -> list[tuple[str, list[CellResult | None]]]:
        return [(self.labels[t], [self.cells.get((t, m)) for m in self.modes]) for t in self.tags]


def grid(cells: list[CellResult]) -> Grid:
    tags = list(dict.fromkeys(c.tag for c in cells))
    versions = {c.tag: c.resolved_version for c in cells if c.resolved_version}
    return Grid(tags, list(dict.fromkeys(column(c) for c in cells)),
                {(c.tag, column(c)): c for c in cells}, {t: label(t, versions.get(t)) for t in tags})


def when(stamp: str | None) -> str:
    try:
        dt = datetime.fromisoformat(stamp or "")
    except ValueError:
        return stamp or "?"
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f" {dt.tzname()}" if dt.tzinfo else "")


def duration(start: str | None, end: str | None) -> str | None:
    try:
        total = int((datetime.fromisoformat(end or "") - datetime.fromisoformat(start or "")).total_seconds())
    except (ValueError, TypeError):  # unparsable, or one naive and one aware stamp
        return None
    hours, rest = divmod(total, 3600)
    return (f"{hours}h " if hours else "") + f"{rest // 60}m {rest % 60}s"


def context(run: Run) -> dict[str, Any]:
    """What both templates read: the run, its grid and its recommendation (decided before
    rendering, by recommend.py)."""
    cells = shown_cells(run)  # a merged run: each host group's first host
    verdicts = [c.connect.verdict for c in run.cells]  # counted on every host
    latest = next((c.resolved_version for c in cells
                   if (c.base_tag or c.tag) == "latest" and c.resolved_version), None)
    group = {h: g.name for g in run.host_groups for h in g.hosts}
    return {
        "run": run, "cells": cells, "grid": grid(cells), "rec": run.recommendation,
        "counts": {v: sum(x == v for x in verdicts) for v in EMOJI}, "short_id": run.run_id[:8],
        "started": when(run.started_at), "finished": when(run.finished_at),
        "duration": duration(run.started_at, run.finished_at),
        "resolved_latest": latest, "changes": run.changes, "host_facts": host_facts(run),
        "merged": bool(run.host_groups), "group": group, "group_size": {g.name: len(g.hosts) for g in run.host_groups},
        "same_cells": same_cells(run),
        "matrix_cells": len({c.id.removeprefix(f"{c.host}/") for c in run.cells}),
        "oh_matrix": made_by(run), "group_oh_matrix": group_oh_matrix(run),
        "surprised": [c for c in run.cells if c.surprise], "as_expected": as_expected(run.cells),
    }


def made_by(run: Run) -> str | None:
    """The oh-matrix that wrote the run (a merged run: that merged it), or None for results
    from before it was recorded."""
    if not run.oh_matrix_version and not run.oh_matrix_commit:
        return None
    return oh_matrix_label(run.oh_matrix_version, run.oh_matrix_commit)




def failed_as_expected(cell: CellResult) -> bool:
    return cell.failed_as_expected


def as_expected(cells: list[CellResult]) -> dict[str, list[str]]:
    """Why the matrix expects them to fail -> the cells that failed so."""
    out: dict[str, list[str]] = {}
    for c in cells:
        if c.failed_as_expected and c.expected:
            out.setdefault(c.expected.reason or c.expected.text(), []).append(c.id)
    return out


def cell_label(cell: CellResult) -> str:
    """`✅ 22s`, `❌ dns-unresolved`, `⚠️ image-unavailable`, `⏭️ skip`; tasks and a passing remedy noted."""
    c = cell.connect
    if c.verdict == "pass":
        text = f"{EMOJI[c.verdict]} {secs(c.seconds) or 'pass'}"
    elif c.verdict == "skip":
        text = f"{EMOJI[c.verdict]} skip"
    else:
        text = f"{EMOJI.get(c.verdict, c.verdict)} {c.cause or c.verdict}"
        text += f" ({c.direction})" if c.direction else ""
    if tasks := task_summary(cell):
        text += f", {tasks}"
    text += " (expected)" if cell.failed_as_expected else " ❗" if cell.surprise else ""
    return text + (" 🔧" if remedy_passed(cell) else "")


@dataclass(frozen=True)
class Failure:
    """Cells that failed the same way, for one entry of the summary."""

    verdict: str
    cause: str | None
    direction: str | None
    headline: str | None
    remedies: tuple[Any, ...]
    tasks: tuple[TaskResult, ...]
    cells: list[str]


def failures(cells: list[CellResult]) -> list[Failure]:
    """Failed, errored or task-failing cells; cells that failed identically share one entry
    (a release whose image is missing fails the same way in every mode)."""
    groups: dict[str, Failure] = {}
    for c in cells:
        bad_tasks = tuple(t.model_copy(update={"detail": first_line(t.detail) if t.detail else None})
                          for t in c.tasks if t.verdict not in ("pass", "skip"))
        if c.connect.verdict in ("pass", "skip") and not bad_tasks:
            continue
        remedies = tuple(r.model_copy(update={"why": truncate(clean(r.why))}) for r in c.remedies)
        entry = Failure(c.connect.verdict, c.connect.cause, c.connect.direction, headline(c), remedies,
                        bad_tasks, [])
        key = repr((entry.verdict, entry.cause, entry.direction, entry.headline,
                    [r.model_dump() for r in remedies], [t.model_dump() for t in bad_tasks]))
        groups.setdefault(key, entry).cells.append(c.id)
    return list(groups.values())


def skipped(cells: list[CellResult]) -> dict[str, list[str]]:
    """Skip reason -> the cells (and tasks, as TAG-MODE-TASK) it applies to."""
    out: dict[str, list[str]] = {}
    for c in cells:
        if c.connect.verdict == "skip":
            out.setdefault(first_line(c.connect.reason) or "no reason given", []).append(c.id)
        for t in c.tasks:
            if t.verdict == "skip":
                out.setdefault(first_line(t.detail) or "no reason given", []).append(f"{c.id}-{t.name}")
    return out


def code(text: object) -> str:
    """An inline code span that survives backticks in the text."""
    s = " ".join(str(text).split())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def table_code(text: object) -> str:
    """An inline code span inside a Markdown table row, where a bare `|` ends the cell."""
    return code(text).replace("|", "\\|")


def fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(r) for r in re.findall(r"`{3,}", text)), default=0) + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def md(text: object) -> str:
    """Plain text into Markdown: one line, nothing that turns into markup or HTML."""
    return re.sub(r"([\\`*_\[\]<>&|~#])", r"\\\1", " ".join(str(text).split()))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(differing=differing, code=code, table_code=table_code, fence=fence, md=md, secs=secs,
                       shell_lines=shell_lines, label=cell_label)
    env.globals["EMOJI"] = EMOJI
    return env


def render_markdown(run: Run) -> str:
    ctx = context(run)
    return _environment().get_template("summary.md.j2").render(
        **ctx, failures=failures(ctx["cells"]), skipped=skipped(ctx["cells"]))
