"""Faults made for real on the real releases, each decided from what the daemon, the kernel and
OpenHands did, within seconds of the conversation, with the direction that broke (V1 connects
both ways): a runtime the daemon cannot start, a proxy in the app's environment, the callback
port dropped by a scoped firewall rule, a startup grace too short for the host, and a host
made slow by CPU burners beside the cell.

One real run, many assertions (tests/harness/shared.py): the runtime the daemon cannot start
and the proxy run at once before the first test, holding boot slots as any cell does. The
others change the host (a firewall rule) or are about its load (a grace, burners): they run
after them, alone."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from shared import Ran, Shared, one_1x_at_a_time

from harness import remedies
from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host import cleanup, docker_host
from harness.host.containers import free_port
from harness.host.firewall import drop_bridge_to_host
from harness.images.base import BaseImage
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet

Leftovers = Callable[[str], list[str]]
DECIDED = 10.0  # seconds after the conversation was created: every cause but budget-exceeded


def plan(images: ImageSet, run_id: str, mode: str, env: dict[str, str] | None = None, **kw: object) -> CellPlan:
    cell = Cell(Target(images.tag, images.api), ModeChoice(mode))
    return CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150, **kw)  # type: ignore[arg-type]


def text(r: CellResult) -> str:
    return "\n".join(e.text for e in r.connect.evidence)


def rerun_with(images: ImageSet, run_id: str, mode: str, env: dict[str, str]) -> remedies.Rerun:
    def rerun(change: remedies.Change, alone: bool) -> CellResult:
        return run_cell(plan(images, run_id, change.mode or mode, {**env, **change.env}, alone=alone))
    return rerun


def no_entrypoint(client: docker.DockerClient, images: ImageSet, base: BaseImage) -> Callable[[str], CellResult]:
    """An image without the runtime's entrypoint as the runtime."""
    def cell(run_id: str) -> CellResult:
        ref = f"oh-matrix-test/no-entrypoint:{run_id[5:17]}"
        client.images.build(fileobj=io.BytesIO(f"FROM {base.ref}\nLABEL oh-matrix.test=1\n".encode()), tag=ref,
                            rm=True, network_mode="none")
        try:
            return run_cell(plan(images, run_id, "host-gateway", {"SANDBOX_RUNTIME_CONTAINER_IMAGE": ref}))
        finally:
            client.images.remove(ref, force=True)
    return cell


PROXY = {"HTTP_PROXY": "http://127.0.0.1:9"}  # the app's own loopback: nothing listens


def v1_proxied(client: docker.DockerClient, images: ImageSet) -> Callable[[str], tuple[CellResult, list[Any]]]:
    """HTTP_PROXY in a 1.x app's env, and the remedy search on its result."""
    def cells(run_id: str) -> tuple[CellResult, list[Any]]:
        r = run_cell(plan(images, run_id, "host-gateway", PROXY))
        tried = remedies.search(r, remedies.Context(gateway=docker_host.bridge_gateway(client), mode="host-gateway"),
                                rerun_with(images, run_id, "host-gateway", PROXY))
        return r, tried
    return cells


@pytest.fixture(scope="module")
def cells(shared: Shared, client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
          base_image: BaseImage) -> dict[str, Ran[Any]]:
    """The cells of this module that change nothing on the host, at once (the boots one at a time)."""
    return shared.run({"0.62-no-entrypoint": no_entrypoint(client, v0_images, base_image),
                       "1.11-proxy": one_1x_at_a_time(v1_proxied(client, v1_images))})


def test_a_runtime_the_daemon_cannot_start_is_named_in_seconds_with_the_daemons_words(
        cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    """An image without the runtime's entrypoint: the daemon creates the container and cannot
    start it. Before, that waited out the whole budget as budget-exceeded."""
    ran = cells["0.62-no-entrypoint"]
    r, run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause) == ("fail", "runtime-missing"), r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds <= DECIDED, r.connect.explain()
    assert "micromamba" in text(r) and "no such file" in text(r).lower(), r.connect.explain()  # the daemon's words
    assert leftovers(run_id) == []


def test_v1_health_checks_go_through_a_proxy_in_the_apps_env(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["1.11-proxy"]
    (r, tried), run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause, r.connect.direction) == ("fail", "proxy", "app->runtime"), \
        r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds <= DECIDED
    assert [(t.name, t.verdict) for t in tried] == [("no-proxy", "pass")], [(t.cause, t.seconds) for t in tried]
    assert leftovers(run_id) == []


@pytest.mark.alone  # a firewall rule on docker0: no other release test meanwhile (hostturn.py)
def test_v1_callback_port_dropped_by_a_firewall_is_a_timeout_on_the_callback_direction(
        client: docker.DockerClient, v1_images: ImageSet, run_id: str, leftovers: Leftovers) -> None:
    """The sandbox's calls back to the app's port are dropped from docker0 (ufw's default deny,
    scoped to that port); the app -> sandbox path stays open."""
    port = free_port()
    with drop_bridge_to_host(ports=str(port)):
        r = run_cell(plan(v1_images, run_id, "host-gateway", app_port=port))
    assert (r.connect.verdict, r.connect.cause, r.connect.direction) == \
        ("fail", "connect-timeout", "sandbox->app"), r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds <= DECIDED + 10  # the sandbox boots first
    assert f":{port}" in r.connect.evidence[0].text
    assert leftovers(run_id) == []


@pytest.mark.alone  # the grace this host needs, measured: no other release test meanwhile (hostturn.py)
def test_a_startup_grace_too_short_for_the_host_is_said_so_and_the_knob_is_proven(
        client: docker.DockerClient, v1_images: ImageSet, run_id: str, leftovers: Leftovers) -> None:
    from harness.cells.runner import run_one
    from harness.context import RunContext
    from harness.matrix import parse

    m = parse({"run": {"tasks": []}, "targets": [{"tag": "1.11"}], "modes": {"host-gateway": {}}}, "m.toml")
    ctx = RunContext(run_id=run_id, out="/nonexistent", matrix_path="m.toml", matrix_text="", backend="pypi",
                     app_env={"SANDBOX_STARTUP_GRACE_SECONDS": "1"}, started_at="now",
                     images={"1.11": v1_images})
    r = run_one(ctx, m, m.cells()[0])
    assert (r.connect.verdict, r.connect.cause) == ("fail", "startup-grace"), r.connect.explain()
    assert r.boot.alone  # rerun with the machine to itself before the verdict was written
    assert r.connect.evidence[0].text.startswith(
        "the startup grace set here (SANDBOX_STARTUP_GRACE_SECONDS=1) is shorter than this host needs")
    [grace] = r.remedies  # tried whatever the flags, with the setting its boot time asks for
    assert (grace.name, grace.verdict) == ("v1-startup-grace", "pass"), grace
    assert leftovers(run_id) == []


@pytest.fixture
def burners(client: docker.DockerClient, base_image: BaseImage) -> Iterator[list[str]]:
    """CPU burners beside the cell, started the moment a V1 sandbox appears, so the app boots as
    usual and the sandbox boots on a host busy with other work (four burners on two cores)."""
    run_id = f"test-burn-{uuid.uuid4().hex[:8]}"
    started: list[str] = []
    stop = threading.Event()
    before = {c.name for c in client.containers.list(all=True)}

    def watch() -> None:
        while not stop.wait(0.3):
            if any(c.name.startswith("oh-agent-server-") and c.name not in before
                   for c in client.containers.list(all=True)):
                for _ in range(4):
                    started.append(client.containers.run(
                        base_image.ref, ["python3", "-c", "while True: pass"], detach=True,
                        labels=cleanup.labels(run_id), network_mode="none").name)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield started
    finally:
        stop.set()
        watcher.join(timeout=10)
        cleanup.sweep(client, run_id)


@pytest.mark.alone  # CPU burners, started when any new 1.x sandbox appears: no other release test meanwhile
def test_a_host_busy_with_other_work_is_told_apart_from_a_broken_cell(
        client: docker.DockerClient, v1_images: ImageSet, run_id: str, burners: list[str],
        leftovers: Leftovers, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cells.runner import run_one

    monkeypatch.delenv("OH_MATRIX_APP_ENV", raising=False)  # the release's own default grace (conftest.py)
    from harness.context import RunContext
    from harness.matrix import parse

    m = parse({"run": {"tasks": []}, "targets": [{"tag": "1.11"}], "modes": {"host-gateway": {}}}, "m.toml")
    ctx = RunContext(run_id=run_id, out="/nonexistent", matrix_path="m.toml", matrix_text="", backend="pypi",
                     app_env={}, started_at="now", images={"1.11": v1_images})
    r = run_one(ctx, m, m.cells()[0])
    print(r.connect.explain(), r.notes, r.boot, sep="\n")
    assert len(burners) == 4  # they ran while the sandbox booted
    assert (r.connect.verdict, r.connect.cause) == ("fail", "startup-grace"), r.connect.explain()
    assert r.connect.evidence[0].text.startswith("this host is too slow for 1.11's default startup grace (15.0 s)")
    assert r.boot.alone and r.boot.other_cores is not None and r.boot.other_cores > 1.0, r.boot
    assert any("run twice" in n and "machine to itself" in n for n in r.notes)
    [grace] = r.remedies
    assert (grace.name, grace.verdict) == ("v1-startup-grace", "pass"), grace
    assert leftovers(run_id) == []
