"""`python -m harness.devtools.record [--out DIR]`: record the built-in tasks' trajectories for
`--llm replay` from a real scripted run (0.62, host-gateway, pypi images). Only tasks that
passed are saved; harness/tasks/catalogs/replay/ holds the ones that ship."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from harness import generations, images
from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host import cleanup, docker_host
from harness.matrix import Cell, ModeChoice, Target
from harness.model import Verdict
from harness.tasks import CATALOG

OUT = Path(__file__).resolve().parents[1] / "tasks" / "catalogs" / "replay"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.devtools.record")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--tag", default="0.62")
    a = ap.parse_args(argv)
    gen = generations.for_tag(a.tag)
    if gen.replay_skip:  # recordings are for the generations that replay them
        print(f"--tag {a.tag}: {gen.replay_skip}", file=sys.stderr)
        return 2
    client = docker_host.client()
    target = Target(a.tag, gen.name)
    imgs = images.prepare(client, a.tag, target.api, "pypi")
    run_id = f"record-{uuid.uuid4().hex}"
    plan = CellPlan(run_id, Cell(target, ModeChoice("host-gateway")), imgs, {}, connect_budget=150,
                    app_budget=150, tasks=list(CATALOG), record_to=a.out)
    try:
        result = run_cell(plan)
    finally:
        cleanup.sweep(client, run_id)
    for t in result.tasks:
        print(f"{t.name}: {t.verdict}" + ("" if t.verdict == Verdict.PASS else f" (not recorded: {t.detail})"))
    return 0 if all(t.verdict == Verdict.PASS for t in result.tasks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
