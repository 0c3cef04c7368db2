"""Sweeps remove what dead runs left, and never what a live run still uses."""

from __future__ import annotations

import socket
from pathlib import Path

import docker
import pytest

from harness.host import cleanup
from harness.images.base import BaseImage


def test_sweep_takes_dead_runs_only(client: docker.DockerClient, base_image: BaseImage, run_id: str) -> None:
    dead = {cleanup.RUN_LABEL: run_id, cleanup.CELL_LABEL: "dead",
            cleanup.OWNER_LABEL: f"{socket.gethostname()}:999999999"}
    live = {cleanup.RUN_LABEL: run_id, cleanup.CELL_LABEL: "live", **{cleanup.OWNER_LABEL: cleanup.owner()}}
    net = client.networks.create(f"oh-matrix-dead-{run_id[:12]}", labels=dead)
    c_dead = client.containers.run(base_image.ref, ["sleep", "300"], detach=True, labels=dead, network=net.name)
    c_live = client.containers.run(base_image.ref, ["sleep", "300"], detach=True, labels=live)

    report = cleanup.sweep(client)  # the start-of-run sweep: no run id, dead owners only

    assert c_dead.name in report.containers and net.name in report.networks
    assert c_live.name not in report.containers
    c_live.reload()
    assert c_live.status == "running"
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c_dead.id)

    report = cleanup.sweep(client, run_id)  # a run's own final sweep takes its live resources
    assert c_live.name in report.containers


def test_a_container_of_an_image_a_build_committed_is_no_build_left_behind(
        client: docker.DockerClient, base_image: BaseImage, run_id: str) -> None:
    """A build container's labels (its build, its dead owner) stay on the image it commits, so
    every container of that image carries them, a person's own `docker run` of it too (a cell's
    app is kept by its live owner's label). The sweep took a person's for a build left behind."""
    dead = {cleanup.BUILD_LABEL: f"oh-matrix-test/committed:{run_id[5:17]}",
            cleanup.OWNER_LABEL: f"{socket.gethostname()}:999999999"}
    build = client.containers.run(base_image.ref, ["true"], detach=True, labels=dead)
    build.wait()
    ref = dead[cleanup.BUILD_LABEL]
    # a kind of its own: committed from the base, it would carry the base's label, and an
    # `images save` or a rootless test's copy (run by another worker at the same time) takes it for one
    build.commit(repository=ref.split(":")[0], tag=ref.split(":")[1], changes=["LABEL oh-matrix.image=test"])
    mine = client.containers.run(ref, ["sleep", "300"], detach=True)  # a person's: no label of ours
    try:
        report = cleanup.sweep(client)  # another run's start: dead owners only
        assert build.name in report.containers  # the build's own container: left behind, taken
        assert mine.name not in report.containers
        mine.reload()
        assert mine.status == "running"
    finally:
        mine.remove(force=True)
        client.images.remove(ref, force=True)


def test_sweep_tolerates_already_removed(client: docker.DockerClient, base_image: BaseImage, run_id: str) -> None:
    c = client.containers.run(base_image.ref, ["true"], detach=True, labels=cleanup.labels(run_id))
    c.remove(force=True)
    assert cleanup.remove_container(c) is False
    assert not cleanup.sweep(client, run_id)


def test_registry_forgets_what_a_cell_removed(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    cleanup.register("run-x", "oh-agent-server-aaa")
    cleanup.register("run-x", "oh-agent-server-bbb")
    cleanup.unregister("run-x", "oh-agent-server-aaa")
    assert [p.name for p in (cleanup.cache_root() / "runs" / "run-x").glob("*.name")] == ["oh-agent-server-bbb.name"]
    cleanup.unregister("run-x", "oh-agent-server-bbb")
    assert not (cleanup.cache_root() / "runs" / "run-x").exists()


def test_images_save_and_load_carry_the_base_between_machines(client: docker.DockerClient, base_image: BaseImage,
                                                              tmp_path: Path) -> None:
    """What the nightly caches: `images save` writes the base as a tar, `images load` reads
    it into the daemon under its own name."""
    from harness.images import saved

    [tar] = [p for p in saved.save(client, tmp_path) if base_image.ref.replace("/", "_").replace(":", "_") in p.name]
    assert tar.stat().st_size > 10_000_000
    assert tar not in saved.save(client, tmp_path)  # saved already: not written again
    assert base_image.ref in saved.load(client, tmp_path)
    assert client.images.get(base_image.ref).labels["oh-matrix.image"] == "base"
