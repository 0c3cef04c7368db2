"""Timings anyone can rerun (`nox -s bench -- WHAT...`):

    images        a cold build of 0.61, 0.62 and latest (pypi backend) at once, with pip and
                  with uv side by side: each step's seconds (collect, sources, venv, images)
                  and whether the installed set of each release is the same
    images-warm   `prepare` of the same releases with everything cached: should take seconds
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
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import generations, images, matrix
from harness.errors import ImageUnavailable
from harness.host import docker_host
from harness.host.firewall import drop_bridge_to_host, ephemeral_ports
from harness.images import pypi, wheels
from harness.output import write_json

# Bench runs break cells on purpose: they keep their own history (reports/bench/history.jsonl),
# so the user's regressions and trends in reports/ only ever compare the user's runs.
OUT = Path("reports") / "bench"
TAGS = tuple((tag, generations.for_tag(tag).name) for tag in ("0.61", "0.62", "latest"))


def _image_sizes(client: Any, s: images.ImageSet) -> dict[str, int]:
    def mb(ref: str) -> int:
        return round(float(client.images.get(ref).attrs["Size"]) / 1e6)

    return {"app_mb": mb(s.app_image), "runtime_mb": mb(s.runtime_image)}


def bench_images_warm() -> list[dict[str, Any]]:
    """`prepare` of the three releases with everything cached: should take seconds."""
    client = docker_host.client()
    rows = []
    for tag, api in TAGS:
        t0 = time.monotonic()
        s = images.prepare(client, tag, api, "pypi")
        rows.append({"tag": tag, "version": s.resolved_version, "seconds": round(time.monotonic() - t0, 1),
                     **_image_sizes(client, s)})
    return rows


INSTALLERS = ("pip", "uv")  # the old way first, then the new one, in the same run
STEPS = pypi.STEPS


def bench_images_cold() -> list[dict[str, Any]]:
    """A cold build of the three releases at once, as the first `nox` makes them, once per
    installer: each with an empty cache of its own and none of the releases' images (the
    base image stays: it is the same debootstrap for both, and timed apart when missing).
    Each release's steps come from the build itself (ImageSet.build_seconds). Then the
    installed set (name==version) of each release's image, which must not change with
    the installer."""
    client = docker_host.client()
    rows: list[dict[str, Any]] = []
    installed: dict[str, dict[str, list[str]]] = {}
    for installer in INSTALLERS:
        cache = OUT / f"cache-{installer}"
        shutil.rmtree(cache, ignore_errors=True)
        with _env(OH_MATRIX_CACHE=str(cache.resolve()), OH_MATRIX_INSTALLER=installer):
            _remove_release_images(client)
            t0 = time.monotonic()
            built = images.prepare_all(client, TAGS, "pypi")
            wall = round(time.monotonic() - t0, 1)
        installed[installer] = {}
        for tag, s in built.items():
            if isinstance(s, ImageUnavailable):
                rows.append({"installer": installer, "tag": tag, "unavailable": str(s)[:160]})
                continue
            installed[installer][tag] = _installed(client, s.app_image)
            rows.append({"installer": installer, "tag": tag, "version": s.resolved_version, "wall_s": wall,
                         **{f"{step}_s": s.build_seconds.get(step, 0.0) for step in STEPS},
                         "packages": len(installed[installer][tag]), **_image_sizes(client, s)})
        shutil.rmtree(cache, ignore_errors=True)
    for tag, _ in TAGS:
        a, b = (set(installed[i].get(tag, [])) for i in INSTALLERS)
        rows.append({"tag": tag, "same_installed_set": a == b and bool(a),
                     "only_pip": sorted(a - b), "only_uv": sorted(b - a)})
    return rows


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _remove_release_images(client: Any) -> None:
    """Every image a pypi build made of the three releases (not the base)."""
    py = wheels.find_python312()
    for tag, _ in TAGS:
        version = wheels.resolve_release(tag, py).version
        for img in client.images.list(filters={"label": [f"oh-matrix.release={version}",
                                                          "oh-matrix.backend=pypi"]}):
            for ref in img.tags:
                client.images.remove(ref, force=True)


# The installed distributions, read by the image's own Python (not pip: it lists itself apart).
_INSTALLED = ("import importlib.metadata as m; print('\\n'.join(sorted({"
              "d.metadata['Name'].lower().replace('_', '-') + '==' + d.version for d in m.distributions()})))")


def _installed(client: Any, ref: str) -> list[str]:
    out = client.containers.run(ref, ["-c", _INSTALLED], entrypoint="/opt/oh-venv/bin/python",
                                network_mode="none", remove=True)
    return [line for line in out.decode().split() if line]


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
    ("1.11-bridge", {}, False, "dns-unresolved"),
    # the sandbox calls the app back at a port where nothing listens
    ("1.11-host-gateway", {generations.for_tag("1.11").callback_port_env or "": "9"}, False, "connection-refused"),
)
# The releases whose failing cells the diagnosis bench times: the app server's (a sandbox the
# app must reach); latest is Agent Canvas, whose agent runs in the app's own container.
DIAGNOSIS_MATRIX = """[run]
tasks = []
[[targets]]
tag = "0.62"
[[targets]]
tag = "1.11"
[modes.bridge]
[modes.host-gateway]
"""


def bench_diagnosis() -> list[dict[str, Any]]:
    rows = []
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "diagnosis.toml").write_text(DIAGNOSIS_MATRIX)
    for i, (cell, env, firewall, expected) in enumerate(FAILING):
        out = OUT / f"diagnosis-{i}-{cell}"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--matrix", str(OUT / "diagnosis.toml"),
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
        if what == "images":
            rows = bench_images_cold()
        elif what == "images-warm":
            rows = bench_images_warm()
        elif what == "matrix":
            rows = bench_matrix()
        elif what == "diagnosis":
            rows = bench_diagnosis()
        elif what == "tasks":
            rows = bench_tasks()
        else:
            print(f"bench: unknown benchmark {what!r} (images, images-warm, matrix, diagnosis, tasks)",
                  file=sys.stderr)
            return 2
        write_json(OUT / f"{what}.json", rows)
        print(f"\n{what}:")
        for row in rows:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
