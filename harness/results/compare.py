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


def differences(a: Run, b: Run, skip_tags: tuple[str, ...] = ()) -> list[str]:
    """One line per difference: `cell: what: A -> B`; cells only one run has are named too."""
    ours = {c.id: c for c in a.cells if c.tag not in skip_tags}
    theirs = {c.id: c for c in b.cells if c.tag not in skip_tags}
    lines = []
    for cid in dict.fromkeys([*ours, *theirs]):
        if cid not in theirs or cid not in ours:
            lines.append(f"{cid}: only in {'the first' if cid in ours else 'the second'} run")
            continue
        fa, fb = finding(ours[cid]), finding(theirs[cid])
        for key in dict.fromkeys([*fa, *fb]):
            if fa.get(key) != fb.get(key):
                lines.append(f"{cid}: {key}: {fa.get(key, '-')} -> {fb.get(key, '-')}")
    return lines
