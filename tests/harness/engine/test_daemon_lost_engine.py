"""A daemon killed mid-cell and started again, for real, on a daemon of the test's own (a second
dockerd in a network namespace, remotedaemon.py: this machine's main daemon is never touched).
The cell holds an app container and a network of its own while its API is awaited (a stand-in
app that never answers, on the base image); the daemon is killed
then: the cell is `error daemon-lost`, the run exits 3 in one line, and what it left, owned by
a run process that is gone, is removed by the next run's first sweep once the daemon is back."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest
import remotedaemon
import rootless

from harness import workflow
from harness.cells import runner
from harness.host import cleanup, docker_host
from harness.images.base import BaseImage
from harness.model import ImageSet, Run


def dead_pid() -> str:
    """A process id that no longer runs: the owner of a run whose process died."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return str(proc.pid)


def kill_when_up(d: remotedaemon.RemoteDaemon, run_id: str, killed: threading.Event) -> None:
    """Kill the daemon once the cell's app has run a few seconds (its API awaited)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        running = d.client().containers.list(filters={"label": f"{cleanup.RUN_LABEL}={run_id}"})
        if running:
            time.sleep(4)
            assert d.dockerd is not None
            d.dockerd.kill()
            killed.set()
            return
        time.sleep(0.5)


def test_a_daemon_killed_mid_cell(client: docker.DockerClient, base_image: BaseImage, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.toml").write_text(
        '[run]\ntasks = []\napp_budget = 120\n[[targets]]\ntag = "0.62"\n[deployments.standin]\n'
        f'docker_run = "docker run --network mine -p 3000:3000 {base_image.ref} sleep 600"\n'
        "own_image = false\n")
    run_id = uuid.uuid4().hex
    with remotedaemon.tcp_daemon() as d:
        rootless.load_images(f"unix://{d.socket}", base_image.ref)
        monkeypatch.setenv("DOCKER_HOST", d.docker_host)
        monkeypatch.setenv("OH_MATRIX_RUN_ID", run_id)
        monkeypatch.setenv("OH_MATRIX_OWNER_PID", dead_pid())  # the run's process is gone when the daemon is back
        monkeypatch.setattr(docker_host, "_client", None)

        def standin(client: object, i: workflow.Inputs, ctx: object) -> dict[str, ImageSet]:
            # the target's images: the stand-in app, no release
            return {"0.62": ImageSet(tag="0.62", resolved_version="0.62.0", backend="official",
                                     api="v0", app_image=base_image.ref, runtime_image="")}

        def cells(p: workflow.Prepared) -> workflow.Found:
            found = workflow.Found()
            for cell in p.inputs.cells:
                found.results[cell.id] = runner.run_one(p.ctx, p.inputs.matrix, cell)
            return found

        monkeypatch.setattr(workflow, "prepare_images", standin)
        for step in ("record_history", "judge", "render"):  # after the cells: collect, write and the final sweep
            monkeypatch.setattr(workflow, step, lambda *a: None)
        killed = threading.Event()
        killer = threading.Thread(target=kill_when_up, args=(d, run_id, killed), daemon=True)
        killer.start()
        t0 = time.monotonic()
        code = workflow.run(workflow.Options(matrix=str(tmp_path / "m.toml"), out=str(tmp_path / "run")), cells)
        took = time.monotonic() - t0
        killer.join(10)
        assert killed.is_set(), "the cell's app never ran on the daemon"

        err = capsys.readouterr().err
        said = [line for line in err.splitlines() if line.startswith("oh-matrix:")]
        results = (tmp_path / "run" / "results.json").read_text()
        assert code == workflow.EXIT_DOCKER, err[-3000:] + results[results.find('"cells"'):][:2500]
        assert len(said) == 1 and "Traceback" not in err and "final sweep failed" not in err, err[-3000:]
        assert said[0].startswith(f"oh-matrix: the Docker daemon at {d.docker_host} went away during the run: "
                                  "1 cell(s) error daemon-lost (0.62-standin)")
        assert "next run's first sweep" in said[0]
        assert took < 120, took  # not the app budget: the cell ended when the daemon went
        cell = Run.model_validate_json((tmp_path / "run" / "results.json").read_text()).cells[0]
        assert (cell.connect.verdict, cell.connect.cause) == ("error", "daemon-lost"), cell.connect
        assert f"the Docker daemon at {d.docker_host} went away" in cell.connect.evidence[0].text

        assert d.dockerd is not None
        d.dockerd.start(d.client)  # back: what the cell made is still there, labelled
        remote = d.client()
        label = {"label": f"{cleanup.RUN_LABEL}={run_id}"}
        left = [c.name for c in remote.containers.list(all=True, filters=label)]
        networks = [n.name for n in remote.networks.list(filters=label)]
        assert left and networks, "nothing was left to sweep: the test did not stop the daemon mid-cell"
        swept = cleanup.sweep(remote)  # the next run's first sweep: its owner is gone
        assert set(left) <= set(swept.containers) and set(networks) <= set(swept.networks), swept
        assert not remote.containers.list(all=True, filters=label) and not remote.networks.list(filters=label)
    monkeypatch.setattr(docker_host, "_client", None)
