"""`nox -s soak [-- N]`: the smoke matrix N times in a row (default 10). Fails when a connect
or task verdict flips between runs, when anything is left over after a run, or when the
daemon's disk use (images, containers, volumes, build cache) or dockerd's memory keeps growing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import cleanup, docker_host
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
    n = int(argv[0]) if argv else 10
    client = docker_host.client()
    rows: list[dict[str, Any]] = []
    for i in range(n):
        out = Path("reports") / "soak" / f"run-{i:02d}"
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", "matrices/smoke.toml",
                               "--backend", "pypi", "-n", "2", "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cells = json.loads((out / "results.json").read_text())["cells"]
        rows.append({"run": i, "exit": proc.returncode,
                     "verdicts": {c["id"]: _verdict(c) for c in cells},
                     "leftovers": _leftovers(client), "disk_mb": _disk_mb(client), "dockerd_rss_mb": _dockerd_rss_mb()})
        print(f"soak {i + 1}/{n}: {rows[-1]['verdicts']} leftovers={len(rows[-1]['leftovers'])}", flush=True)
    flips = sorted({cid for r in rows for cid, v in r["verdicts"].items() if v != rows[0]["verdicts"].get(cid)})
    left = sorted({name for r in rows for name in r["leftovers"]})
    growth = {k: round(rows[-1]["disk_mb"][k] - rows[0]["disk_mb"][k], 1) for k in rows[0]["disk_mb"]}
    rss = [r["dockerd_rss_mb"] for r in rows if r["dockerd_rss_mb"] is not None]
    summary = {"runs": n, "verdict_flips": flips, "leftovers": left, "disk_growth_mb": growth,
               "dockerd_rss_mb": {"first": rss[0] if rss else None, "last": rss[-1] if rss else None}}
    write_json(Path("reports") / "soak" / "soak.json", {"summary": summary, "runs": rows})
    print(json.dumps(summary, indent=2))
    grew = any(v > GROWTH_MB for v in growth.values())
    return 1 if flips or left or grew else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
