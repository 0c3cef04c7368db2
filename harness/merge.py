"""Many hosts, one report: `oh-matrix merge DIR... --out DIR`.

Which configuration works depends on the host (distro, daemon, firewall), so a fleet runs
the matrix on several. Merged cells keep their verdicts and evidence untouched and gain the
host as a dimension: ids become `HOST/TAG-MODE` and grid rows `TAG @ HOST`. The
recommendation is made per host class (OS, daemon version, rootless), from that class's
cells only: a configuration that works on one class says nothing about another.
"""

from __future__ import annotations

import uuid

from harness.errors import InputError
from harness.model import CellResult, Host, Run
from harness.recommend import recommend


def host_class(host: Host) -> str:
    rootless = " rootless" if host.rootless else ""
    return f"{host.os or '?'} / Docker {host.server_version or '?'}{rootless}"


def merge(runs: list[Run]) -> Run:
    if len(runs) < 2:
        raise InputError("merge: give at least two run folders")
    cells: list[CellResult] = []
    hosts: dict[str, Host] = {}
    by_class: dict[str, list[CellResult]] = {}
    for run in runs:
        label = run.host.name or run.run_id[:8]
        if label in hosts:  # two runs from one host: keep both, apart
            label = f"{label}-{run.run_id[:6]}"
        cls = host_class(run.host)
        hosts[label] = run.host.model_copy(update={"run_id": run.run_id, "host_class": cls})
        by_class.setdefault(cls, []).extend(run.cells)
        for cell in run.cells:
            cells.append(cell.model_copy(deep=True, update={
                "id": f"{label}/{cell.id}", "tag": f"{cell.tag} @ {label}", "host": label, "host_class": cls,
                "base_tag": cell.tag}))
    merged = Run(run_id=uuid.uuid4().hex, started_at=min(r.started_at for r in runs),
                 finished_at=max(r.finished_at for r in runs),
                 backend=",".join(sorted({r.backend for r in runs})), cells=cells, hosts=hosts,
                 merged_from=[r.run_id for r in runs],
                 recommendation_per_host_class={cls: recommend(c) for cls, c in by_class.items()})
    merged.recommendation = recommend(cells)
    return merged
