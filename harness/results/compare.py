"""Two runs side by side (`oh-matrix compare A B`): what a cell found, apart from times, ids,
ports and paths: its connect verdict, cause and direction, each task's verdict and each
remedy's. Equal runs say so and exit 0; differences are listed per cell and exit 1."""

from __future__ import annotations

from harness.model import CellResult, Run


def finding(cell: CellResult) -> dict[str, str]:
    """What a cell found, as comparable text (nothing that changes from run to run)."""
    c = cell.connect
    out = {"connect": " ".join(str(x) for x in (c.verdict, c.cause, c.direction) if x)}
    out |= {f"task {t.name}": str(t.verdict) + (f" {t.cause}" if t.cause else "") for t in cell.tasks}
    out |= {f"remedy {r.name}": str(r.verdict) + (f" {r.cause}" if r.cause else "") for r in cell.remedies}
    return out


def changes(a: Run, b: Run, skip_tags: tuple[str, ...] = ()) -> list[dict[str, str | None]]:
    """One record per difference, `{cell, what, first, second}` (what: `connect`, `task NAME`,
    `remedy NAME`, or None for a cell only one run has, whose other side is None)."""
    ours = {c.id: c for c in a.cells if c.tag not in skip_tags}
    theirs = {c.id: c for c in b.cells if c.tag not in skip_tags}
    out: list[dict[str, str | None]] = []
    for cid in dict.fromkeys([*ours, *theirs]):
        if cid not in theirs or cid not in ours:
            out.append({"cell": cid, "what": None, "first": "run" if cid in ours else None,
                        "second": "run" if cid in theirs else None})
            continue
        fa, fb = finding(ours[cid]), finding(theirs[cid])
        out += [{"cell": cid, "what": key, "first": fa.get(key), "second": fb.get(key)}
                for key in dict.fromkeys([*fa, *fb]) if fa.get(key) != fb.get(key)]
    return out


def line(d: dict[str, str | None]) -> str:
    """`cell: what: A -> B`, or `cell: only in the first run`."""
    if d["what"] is None:
        return f"{d['cell']}: only in {'the first' if d['first'] else 'the second'} run"
    return f"{d['cell']}: {d['what']}: {d['first'] or '-'} -> {d['second'] or '-'}"


def differences(a: Run, b: Run, skip_tags: tuple[str, ...] = ()) -> list[str]:
    """One line per difference: `cell: what: A -> B`; cells only one run has are named too."""
    return [line(d) for d in changes(a, b, skip_tags)]
