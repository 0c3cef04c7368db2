"""Timings anyone can rerun (`nox -s bench -- WHAT...`):

    images        warm `prepare` of 0.61, 0.62 and latest (pypi backend): should take seconds
    images-cold   remove those releases' images and wheelhouses first, then build cold
    matrix        the 8 cells of 0.62 and latest (every mode) with -n 1 and -n 2 (warm
                  images), tasks included, and the ratio of their wall times
    diagnosis     seconds from conversation to verdict for cells that fail for a known
                  reason (OpenHands itself waits 120 s and then reports nothing)
    tasks         the task catalog on 0.62 and latest (host-gateway, api and headless):
                  seconds and LLM calls per task, through the real agent loop

Prints a table and writes reports/bench/<what>.json.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import generations, images, matrix
from harness.errors import ImageUnavailable
from harness.host import docker_host
from harness.host.firewall import drop_bridge_to_host, ephemeral_ports
from harness.images import wheels
from harness.output import write_json
from harness.paths import cache_root

# Bench runs break cells on purpose: they keep their own history (reports/bench/history.jsonl),
# so the user's regressions and trends in reports/ only ever compare the user's runs.
OUT = Path("reports") / "bench"
TAGS = tuple((tag, generations.for_tag(tag).name) for tag in ("0.61", "0.62", "latest"))


def _image_sizes(client: Any, s: images.ImageSet) -> dict[str, int]:
    def mb(ref: str) -> int:
        return round(float(client.images.get(ref).attrs["Size"]) / 1e6)

    return {"app_mb": mb(s.app_image), "runtime_mb": mb(s.runtime_image)}


def bench_images(cold: bool) -> list[dict[str, Any]]:
    client = docker_host.client()
    rows = []
    for tag, api in TAGS:
        if cold:
            py = wheels.find_python312()
            release = wheels.resolve_release(tag, py)
            for img in client.images.list(filters={"label": f"oh-matrix.release={release.version}"}):
                for ref in img.tags:
                    client.images.remove(ref, force=True)
            for house in (cache_root() / "wheelhouse").glob(f"{release.version}-*"):
                shutil.rmtree(house)
        t0 = time.monotonic()
        try:
            s = images.prepare(client, tag, api, "pypi")
        except ImageUnavailable as e:  # still timed: the build ran, the release does not start
            rows.append({"tag": tag, "version": e.resolved_version, "cold": cold,
                         "seconds": round(time.monotonic() - t0, 1), "unavailable": str(e)[:120]})
            continue
        rows.append({"tag": tag, "version": s.resolved_version, "cold": cold,
                     "seconds": round(time.monotonic() - t0, 1), **_image_sizes(client, s)})
    return rows


def bench_matrix() -> list[dict[str, Any]]:
    m = matrix.load(matrix.DEFAULT)
    only = [c.id for c in m.cells() if c.target.tag in ("0.62", "latest")]
    rows: list[dict[str, Any]] = []
    for n in (1, 2):
        cmd = [sys.executable, "-m", "harness.cli", "run", "--matrix", matrix.DEFAULT,
               "--backend", "pypi", "-n", str(n), "--out", str(OUT / f"matrix-n{n}")]
        for cid in only:
            cmd += ["--only", cid]
        t0 = time.monotonic()
        proc = subprocess.run(cmd)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"bench: oh-matrix run exited {proc.returncode}")
        seconds = round(time.monotonic() - t0, 1)
        cells = json.loads((OUT / f"matrix-n{n}" / "results.json").read_text())["cells"]
        verdicts = {c["id"]: f"{c['connect']['verdict']}/{c['connect']['cause']}" for c in cells}
        rows.append({"cells": len(only), "workers": n, "seconds": seconds, "verdicts": verdicts})
    rows.append({"ratio_n2_to_n1": round(rows[1]["seconds"] / rows[0]["seconds"], 2),
                 "same_verdicts": rows[0]["verdicts"] == rows[1]["verdicts"]})
    return rows


# (cell, app env that breaks it on a stock host, a ufw-like drop of docker0 -> host, expected cause)
FAILING: tuple[tuple[str, dict[str, str], bool, str], ...] = (
    ("0.62-bridge", {}, False, "dns-unresolved"),
    ("0.62-host-gateway", {"SANDBOX_RUNTIME_BINDING_ADDRESS": "127.0.0.1"}, False, "connection-refused"),
    ("0.62-host-gateway", {}, True, "connect-timeout"),
    ("latest-bridge", {}, False, "dns-unresolved"),
    # the sandbox calls the app back at a port where nothing listens
    ("latest-host-gateway", {generations.for_tag("latest").callback_port_env or "": "9"}, False, "connection-refused"),
)


def bench_diagnosis() -> list[dict[str, Any]]:
    rows = []
    for i, (cell, env, firewall, expected) in enumerate(FAILING):
        out = OUT / f"diagnosis-{i}-{cell}"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--matrix", matrix.DEFAULT,
               "--backend", "pypi", "-n", "1", "--only", cell, "--out", str(out), "--remedies"]
        for k, v in env.items():
            cmd += ["--app-env", f"{k}={v}"]
        # the host ports the cell's runtimes are published on, as ufw's deny would cover them
        ports = generations.for_tag(cell.split("-")[0]).runtime_host_ports or ephemeral_ports()
        with drop_bridge_to_host(ports) if firewall else contextlib.nullcontext():
            subprocess.run(cmd, stdout=subprocess.DEVNULL)
        [c] = json.loads((out / "results.json").read_text())["cells"]
        rows.append({"cell": cell, "env": env, "firewall": firewall, "expected": expected,
                     "cause": c["connect"]["cause"], "seconds_to_verdict": c["connect"]["seconds"],
                     "openhands_wait_s": 120,
                     "remedies": {r["name"]: r["verdict"] for r in c.get("remedies", [])}})
    return rows


def bench_tasks() -> list[dict[str, Any]]:
    out = OUT / "tasks"
    matrix_file = out.with_suffix(".toml")
    matrix_file.parent.mkdir(parents=True, exist_ok=True)
    matrix_file.write_text('[run]\nbackend = "pypi"\nentrypoints = ["api", "headless"]\n'
                           '[[targets]]\ntag = "0.62"\n[[targets]]\ntag = "latest"\n[modes.host-gateway]\n')
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(matrix_file), "-n", "1",
                    "--llm", "scripted", "--out", str(out)], stdout=subprocess.DEVNULL)
    total = round(time.monotonic() - t0, 1)
    rows = []
    for c in json.loads((out / "results.json").read_text())["cells"]:
        rows.append({"cell": c["id"], "connect": c["connect"]["verdict"], "connect_s": c["connect"]["seconds"],
                     "run_s": total})
        rows += [{"cell": c["id"], "task": t["name"], "verdict": t["verdict"], "seconds": t["seconds"],
                  "llm_calls": t.get("llm_calls")} for t in c.get("tasks") or []]
    return rows


def main(argv: list[str]) -> int:
    for what in argv or ["images", "matrix"]:
        if what in ("images", "images-cold"):
            rows = bench_images(cold=what == "images-cold")
        elif what == "matrix":
            rows = bench_matrix()
        elif what == "diagnosis":
            rows = bench_diagnosis()
        elif what == "tasks":
            rows = bench_tasks()
        else:
            print(f"bench: unknown benchmark {what!r} (images, images-cold, matrix, diagnosis, tasks)",
                  file=sys.stderr)
            return 2
        write_json(OUT / f"{what}.json", rows)
        print(f"\n{what}:")
        for row in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
