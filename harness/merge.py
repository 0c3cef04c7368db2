"""Many hosts, one report: `oh-matrix merge DIR... --out DIR`.

Which configuration works depends on the host (distro, daemon, firewall), so a fleet runs
the matrix on several. Merged cells keep their verdicts and evidence untouched and gain the
host as a dimension: ids become `HOST/TAG-MODE` and grid rows `TAG @ HOST`. The
recommendation is made per host class (OS, daemon version, rootless), from that class's
cells only: a configuration that works on one class says nothing about another.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from harness.errors import InputError
from harness.report.recommend import recommend
from harness.results import build_run


def host_class(run: dict[str, Any]) -> str:
    h = run.get("host") or {}
    rootless = " rootless" if h.get("rootless") else ""
    return f"{h.get('os', '?')} / Docker {h.get('server_version', '?')}{rootless}"


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(runs) < 2:
        raise InputError("merge: give at least two run folders")
    labels: dict[str, int] = {}
    cells, hosts, order = [], {}, []
    by_class: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        label = (run.get("host") or {}).get("hostname") or run["run_id"][:8]
        if label in labels:  # two runs from one host: keep both, apart
            label = f"{label}-{run['run_id'][:6]}"
        labels[label] = 1
        hosts[label] = {**(run.get("host") or {}), "run_id": run["run_id"], "class": host_class(run)}
        by_class.setdefault(host_class(run), []).extend(run["cells"])
        for cell in run["cells"]:
            merged = copy.deepcopy(cell)
            merged.update(id=f"{label}/{cell['id']}", tag=f"{cell['tag']} @ {label}", host=label,
                          host_class=host_class(run), base_tag=cell["tag"])
            cells.append(merged)
            order.append(merged["id"])
    per_class = {cls: recommend({"cells": cls_cells}) for cls, cls_cells in by_class.items()}
    return build_run(
        uuid.uuid4().hex, min(r["started_at"] for r in runs), max(r["finished_at"] for r in runs),
        ",".join(sorted({r.get("backend", "?") for r in runs})), {"hosts": hosts}, cells, order,
        {"merged_from": [r["run_id"] for r in runs], "recommendation_per_host_class": per_class},
    )
