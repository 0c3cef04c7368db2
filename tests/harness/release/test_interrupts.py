"""A run that is stopped mid-cell leaves nothing behind: SIGINT, SIGTERM and SIGHUP (to the
whole process group, as when the session that started it ends) clean up on the way out;
after SIGKILL, the next run's sweep (or `oh-matrix clean`) removes it all, the runtime
OpenHands started included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from harness.host import cleanup
from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]


def start_run(tmp_path: Path, run_id: str, own_group: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--matrix", "smoke", "--backend", "pypi",
         "--only", "0.62-host-gateway", "--out", str(tmp_path / "run"), "-n", "1"],
        cwd=ROOT, env={**os.environ, "OH_MATRIX_RUN_ID": run_id},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=own_group,
    )


def wait_for_runtime(client: docker.DockerClient, run_id: str, proc: subprocess.Popen[str]) -> str:
    """Until OpenHands has started its runtime for this run (labelled via the app's kwargs)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        found = [c for c in client.containers.list(filters={"label": f"{cleanup.RUN_LABEL}={run_id}"})
                 if c.name.startswith("openhands-runtime-")]
        if found:
            return str(found[0].name)
        time.sleep(1)
    raise AssertionError("no runtime appeared")


def exists(client: docker.DockerClient, name: str) -> bool:
    return bool(client.containers.list(all=True, filters={"name": f"^{name}$"}))


@pytest.mark.parametrize(("sig", "group"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, True)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP-group"])
def test_signal_mid_cell_cleans_up(client: docker.DockerClient, v0_images: ImageSet, tmp_path: Path,
                                   leftovers: Callable[[str], list[str]], sig: int, group: bool) -> None:
    """SIGHUP goes to the whole group with the reader of the run's output gone: the way a
    session's end reaches a run it started (it used to leave the app, its LLM sidecar and the
    runtime up, and then, once handled, to stop on BrokenPipeError before writing results)."""
    run_id = f"test-{uuid.uuid4().hex}"
    proc = start_run(tmp_path, run_id, own_group=group)
    runtime = wait_for_runtime(client, run_id, proc)
    if group:
        assert proc.stdout is not None
        proc.stdout.close()  # whoever read the run's output is gone: its writes now fail
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    if group:
        assert proc.returncode == 130
        assert (tmp_path / "run" / "results.json").exists() and not list((tmp_path / "run").glob("*crash*"))
    assert leftovers(run_id) == []
    assert not exists(client, runtime)


def test_sigkill_leftovers_are_swept_by_the_next_run(client: docker.DockerClient, v0_images: ImageSet,
                                                     tmp_path: Path, leftovers: Callable[[str], list[str]]) -> None:
    run_id = f"test-{uuid.uuid4().hex}"
    proc = start_run(tmp_path, run_id)
    runtime = wait_for_runtime(client, run_id, proc)
    proc.kill()
    proc.wait(timeout=30)
    left = leftovers(run_id)
    assert runtime in left and len(left) >= 2  # the app and its runtime survived the kill
    report = cleanup.sweep(client)  # what the next run does first; its owner process is gone
    assert set(left) <= set(report.containers + report.networks)
    assert leftovers(run_id) == [] and not exists(client, runtime)


def test_two_runs_at_once_keep_to_their_own(client: docker.DockerClient, v0_images: ImageSet, tmp_path: Path,
                                            leftovers: Callable[[str], list[str]]) -> None:
    """Two `oh-matrix run`s on one daemon: each sweeps at its start and end while the other
    is mid-cell; both must still reach their own real verdicts and leave nothing."""
    runs = {}
    for name in ("a", "b"):
        run_id = f"test-{uuid.uuid4().hex}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", "--matrix", "smoke", "--backend", "pypi",
             "--out", str(tmp_path / name), "-n", "1"],
            cwd=ROOT, env={**os.environ, "OH_MATRIX_RUN_ID": run_id},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        runs[name] = (run_id, proc)
        time.sleep(20)  # b starts (and sweeps) while a's first cell is running
    for name, (run_id, proc) in runs.items():
        out, _ = proc.communicate(timeout=600)
        # bridge fails on a stock host, as smoke expects (exit 0: no surprise), host-gateway passes
        assert proc.returncode == 0, out[-3000:]
        data = json.loads((tmp_path / name / "results.json").read_text())
        verdicts = {c["id"]: (c["connect"]["verdict"], c["connect"]["cause"]) for c in data["cells"]}
        assert verdicts == {"0.62-bridge": ("fail", "dns-unresolved"), "0.62-host-gateway": ("pass", None)}
        assert leftovers(run_id) == []


def test_app_dying_while_its_runtime_lives(client: docker.DockerClient, v0_images: ImageSet,
                                           leftovers: Callable[[str], list[str]]) -> None:
    """The app container is killed mid-cell: the cell says app-exited, and the runtime it
    had started (still running) is removed with the cell."""
    import threading

    from harness.cells.plan import CellPlan
    from harness.cells.runner import run_cell
    from harness.matrix import Cell, ModeChoice, Target
    from harness.model import CellResult

    run_id = f"test-{uuid.uuid4().hex}"
    plan = CellPlan(run_id, Cell(Target("0.62", "v0"), ModeChoice("host-gateway")), v0_images, {},
                    connect_budget=150, app_budget=150)
    results: list[CellResult] = []
    worker = threading.Thread(target=lambda: results.append(run_cell(plan)))
    worker.start()
    deadline = time.monotonic() + 240
    runtime = app = None
    while time.monotonic() < deadline and runtime is None:
        mine = client.containers.list(filters={"label": f"{cleanup.RUN_LABEL}={run_id}"})
        runtime = next((c for c in mine if c.name.startswith("openhands-runtime-")), None)
        app = next((c for c in mine if not c.name.startswith("openhands-runtime-")), None)
        time.sleep(0.5)
    assert runtime is not None and app is not None
    app.kill()
    worker.join(timeout=120)
    [r] = results
    assert (r.connect.verdict, r.connect.cause) == ("fail", "app-exited"), r.connect.explain()
    assert leftovers(run_id) == [] and not exists(client, runtime.name)


def test_a_killed_xdist_worker_is_an_error_and_its_leftovers_are_swept(
        client: docker.DockerClient, v0_images: ImageSet, tmp_path: Path,
        leftovers: Callable[[str], list[str]]) -> None:
    run_id = f"test-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--matrix", "smoke", "--backend", "pypi",
         "--only", "0.62-host-gateway", "--out", str(tmp_path / "run"), "-n", "2", "-k", "test_connect"],
        cwd=ROOT, env={**os.environ, "OH_MATRIX_RUN_ID": run_id},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    runtime = wait_for_runtime(client, run_id, proc)
    workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert len(pids) == 2, workers.stdout  # the two xdist workers; one of them runs the cell
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    assert "crashed" in out  # xdist names the lost worker
    assert "swept what this run's lost workers or daemon left:" in out and runtime in out
    cell = json.loads((tmp_path / "run" / "results.json").read_text())["cells"][0]
    assert (cell["connect"]["verdict"], cell["connect"]["cause"]) == ("error", "harness-error")
    assert "worker running this cell died" in cell["connect"]["evidence"][0]["text"]
    assert leftovers(run_id) == [] and not exists(client, runtime)
