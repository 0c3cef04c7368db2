"""Faults made for real on the real releases, each decided from what the daemon, the kernel and
OpenHands did, within seconds of the conversation, with the direction that broke (V1 connects
both ways): a runtime the daemon cannot start, a proxy in the app's environment, the callback
port dropped by a scoped firewall rule, a startup grace too short for the host, and a host
made slow by CPU burners beside the cell."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator

import docker
import pytest

from harness import remedies
from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host import cleanup, docker_host
from harness.host.containers import free_port
from harness.host.firewall import drop_bridge_to_host
from harness.images.base import BaseImage
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet

pytestmark = [pytest.mark.engine, pytest.mark.release]  # run one at a time: see noxfile.py
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


def test_a_runtime_the_daemon_cannot_start_is_named_in_seconds_with_the_daemons_words(
        client: docker.DockerClient, v0_images: ImageSet, base_image: BaseImage, run_id: str,
        leftovers: Leftovers) -> None:
    """An image without the runtime's entrypoint: the daemon creates the container and cannot
    start it. Before, that waited out the whole budget as budget-exceeded."""
    ref = f"oh-matrix-test/no-entrypoint:{run_id[5:17]}"
    client.images.build(fileobj=io.BytesIO(f"FROM {base_image.ref}\nLABEL oh-matrix.test=1\n".encode()), tag=ref,
                        rm=True, network_mode="none")
    try:
        r = run_cell(plan(v0_images, run_id, "host-gateway", {"SANDBOX_RUNTIME_CONTAINER_IMAGE": ref}))
    finally:
        client.images.remove(ref, force=True)
    assert (r.connect.verdict, r.connect.cause) == ("fail", "runtime-missing"), r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds <= DECIDED, r.connect.explain()
    assert "micromamba" in text(r) and "no such file" in text(r).lower(), r.connect.explain()  # the daemon's words
    assert leftovers(run_id) == []


def test_v1_health_checks_go_through_a_proxy_in_the_apps_env(client: docker.DockerClient, v1_images: ImageSet,
                                                             run_id: str, leftovers: Leftovers) -> None:
    env = {"HTTP_PROXY": "http://127.0.0.1:9"}  # the app's own loopback: nothing listens
    r = run_cell(plan(v1_images, run_id, "host-gateway", env))
    assert (r.connect.verdict, r.connect.cause, r.connect.direction) == ("fail", "proxy", "app->runtime"), \
        r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds <= DECIDED
    tried = remedies.search(r, remedies.Context(gateway=docker_host.bridge_gateway(client), mode="host-gateway"),
                            rerun_with(v1_images, run_id, "host-gateway", env))
    assert [(t.name, t.verdict) for t in tried] == [("no-proxy", "pass")], [(t.cause, t.seconds) for t in tried]
    assert leftovers(run_id) == []


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
