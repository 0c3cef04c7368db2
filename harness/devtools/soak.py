"""`nox -s soak [-- [--matrix FILE] [--runs N] [--workers 2,1]]`: a matrix N times in a row
(default: the default matrix, 4 runs), alternating the worker counts, so a verdict that
depends on the harness's own load shows up. Fails when a connect or task verdict flips
between runs (whatever the worker count), when anything is left over after a run, or when
the daemon's disk use (images, containers, volumes, build cache) or dockerd's memory keeps
growing. Writes reports/soak/soak.json and prints a table of each cell's verdict per run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.host import cleanup, docker_host
from harness.output import write_json

GROWTH_MB = 50  # tolerated drift over the whole soak (logs, SQLite pages, allocator noise)


def _leftovers(client: Any) -> list[str]:
    names = [c.name for c in client.containers.list(all=True, filters={"label": cleanup.RUN_LABEL})]
    names += [c.name for c in client.containers.list(all=True)
              if c.name.startswith(("openhands-runtime-", "oh-agent-server-"))]
    return names + [n.name for n in client.networks.list(filters={"label": cleanup.RUN_LABEL})]


def _verdict(cell: dict[str, Any]) -> str:
    """Connect verdict and cause, and each task's verdict: a flip in any of them counts."""
    tasks = " ".join(f"{t['name']}={t['verdict']}" for t in cell.get("tasks") or [])
    return f"{cell['connect']['verdict']}/{cell['connect']['cause']}" + (f" {tasks}" if tasks else "")


def _disk_mb(client: Any) -> dict[str, float]:
    df = client.df()
    return {
        "images": sum(i.get("Size", 0) for i in df.get("Images") or []) / 1e6,
        "containers": sum(c.get("SizeRw", 0) or 0 for c in df.get("Containers") or []) / 1e6,
        "volumes": sum((v.get("UsageData") or {}).get("Size", 0) for v in df.get("Volumes") or []) / 1e6,
        "build_cache": sum(b.get("Size", 0) for b in df.get("BuildCache") or []) / 1e6,
    }


def _dockerd_rss_mb() -> float | None:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() == "dockerd":
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="nox -s soak --")
    ap.add_argument("--matrix", default="default")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workers", default="2,1", help="worker counts, taken in turn (e.g. 2,1)")
    ap.add_argument("extra", nargs="*", help="more oh-matrix run flags (e.g. --only 0.62-host)")
    a = ap.parse_args(argv)
    counts = [int(x) for x in a.workers.split(",")]
    client = docker_host.client()
    rows: list[dict[str, Any]] = []
    for i in range(a.runs):
        n = counts[i % len(counts)]
        out = Path("reports") / "soak" / f"run-{i:02d}-n{n}"
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", a.matrix, "--backend", "pypi",
                               "-n", str(n), "--out", str(out), *a.extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cells = json.loads((out / "results.json").read_text())["cells"]
        rows.append({"run": i, "workers": n, "exit": proc.returncode,
                     "verdicts": {c["id"]: _verdict(c) for c in cells},
                     "leftovers": _leftovers(client), "disk_mb": _disk_mb(client), "dockerd_rss_mb": _dockerd_rss_mb()})
        print(f"soak {i + 1}/{a.runs} (-n {n}): exit {proc.returncode}, leftovers={len(rows[-1]['leftovers'])}",
              flush=True)
    ids = list(dict.fromkeys(cid for r in rows for cid in r["verdicts"]))
    flips = [cid for cid in ids if len({r["verdicts"].get(cid) for r in rows}) > 1]
    width = max((len(i) for i in ids), default=4)
    print(f"{'cell':{width}}  " + "  ".join(f"run{r['run']} -n{r['workers']}" for r in rows))
    for cid in ids:
        mark = "  FLIP" if cid in flips else ""
        print(f"{cid:{width}}  " + "  |  ".join(str(r["verdicts"].get(cid)) for r in rows) + mark)
    left = sorted({name for r in rows for name in r["leftovers"]})
    growth = {k: round(rows[-1]["disk_mb"][k] - rows[0]["disk_mb"][k], 1) for k in rows[0]["disk_mb"]}
    rss = [r["dockerd_rss_mb"] for r in rows if r["dockerd_rss_mb"] is not None]
    summary = {"matrix": a.matrix, "runs": a.runs, "workers": [r["workers"] for r in rows], "verdict_flips": flips,
               "leftovers": left, "disk_growth_mb": growth,
               "dockerd_rss_mb": {"first": rss[0] if rss else None, "last": rss[-1] if rss else None}}
    write_json(Path("reports") / "soak" / "soak.json", {"summary": summary, "runs": rows})
    print(json.dumps(summary, indent=2))
    grew = any(v > GROWTH_MB for v in growth.values())
    return 1 if flips or left or grew else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
