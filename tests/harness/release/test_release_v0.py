"""The real 0.62 release, built from PyPI, started as people start it. Every verdict below
comes from OpenHands, the daemon and the kernel of this host; the knobs are those the
mechanism says matter (docs/words.md, docs/remedies.md), and the tests check that the
verdicts move with them.

One real run, many assertions (tests/harness/shared.py): the cells of every test but the
firewall's run at once before the first test, holding boot slots as any cell does, and each
test asserts on its own; the documented command's cell is the session's 0.62 host-gateway
cell, which also runs test_release_tasks.py's catalog. The firewall test changes the host, so
it runs after them, alone."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from shared import HOST_GATEWAY, Ran, Shared, host_gateway

from harness import generations
from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host import docker_host
from harness.host.firewall import drop_bridge_to_host
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet

Leftovers = Callable[[str], list[str]]
Gone = Callable[[str | None], bool]

ROOT = Path(__file__).resolve().parents[3]


def run(images: ImageSet, run_id: str, mode: str, env: dict[str, str] | None = None) -> CellResult:
    cell = Cell(Target(images.tag, "v0"), ModeChoice(mode))
    return run_cell(CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150))


CANARIES = {"OPENAI_API_KEY": "sk-canary-5f1e0c", "GITHUB_TOKEN": "ghp_canary_93ab1"}
PROXY = {"HTTP_PROXY": "http://127.0.0.1:9"}  # the app's own loopback: nothing listens there


def bridge_then_fixed(client: docker.DockerClient, images: ImageSet) -> Callable[[str], tuple[Any, ...]]:
    """bridge as it is, then with DOCKER_HOST_ADDR at the bridge's gateway."""
    def cells(run_id: str) -> tuple[Any, ...]:
        gateway = docker_host.bridge_gateway(client)
        assert gateway
        return run(images, run_id, "bridge"), run(images, run_id, "bridge", {"DOCKER_HOST_ADDR": gateway}), gateway
    return cells


def proxied(client: docker.DockerClient, images: ImageSet) -> Callable[[str], tuple[Any, ...]]:
    """HTTP_PROXY in the app's env, and the remedy search on its result."""
    from harness import remedies

    def cells(run_id: str) -> tuple[Any, ...]:
        r = run(images, run_id, "host-gateway", PROXY)
        tried = remedies.search(r, remedies.Context(gateway=docker_host.bridge_gateway(client)),
                                lambda change, _alone: run(images, run_id, "host-gateway", {**PROXY, **change.env}))
        return r, tried
    return cells


def exiting_runtime(client: docker.DockerClient, images: ImageSet) -> Callable[[str], CellResult]:
    def cell(run_id: str) -> CellResult:
        ref = f"oh-matrix-test/exiting-runtime:{run_id[5:17]}"
        dockerfile = (f"FROM {images.runtime_image}\n"
                      "RUN printf '#!/bin/sh\\necho oh-matrix test: the runtime gives up >&2\\nexit 3\\n' "
                      "> /openhands/micromamba/bin/micromamba && chmod +x /openhands/micromamba/bin/micromamba\n")
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True, network_mode="none")
        try:
            return run(images, run_id, "host-gateway", {"SANDBOX_RUNTIME_CONTAINER_IMAGE": ref})
        finally:
            client.images.remove(ref, force=True)
    return cell


def cli_run(out: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """`oh-matrix run` of smoke's 0.62-bridge, with secrets in --app-env."""
    def cell(_run_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "--matrix", "smoke", "--backend", "pypi",
             "--only", "0.62-bridge", "--out", str(out), "-n", "1",
             *[a for k, v in CANARIES.items() for a in ("--app-env", f"{k}={v}")]],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )
    return cell


@pytest.fixture(scope="module")
def cells(shared: Shared, client: docker.DockerClient, v0_images: ImageSet,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran[Any]]:
    """Every cell of this module but the firewall's, at once (the boots one at a time)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    return shared.run({
        HOST_GATEWAY.format(v0_images.tag): host_gateway(v0_images),
        "0.62-bridge-then-fixed": bridge_then_fixed(client, v0_images),
        "0.62-loopback": lambda run_id: run(v0_images, run_id, "host-gateway",
                                            {"SANDBOX_RUNTIME_BINDING_ADDRESS": "127.0.0.1"}),
        "0.62-proxy": proxied(client, v0_images),
        "0.62-exiting-runtime": exiting_runtime(client, v0_images),
        "0.62-cli-smoke-bridge": cli_run(out),
    }) | {"cli-out": Ran("", out)}


def test_documented_command_reaches_ready(cells: dict[str, Ran[Any]], leftovers: Leftovers, gone: Gone) -> None:
    ran = cells["0.62-host-gateway"]
    r, run_id = ran.value, ran.run_id
    assert r.connect.verdict == "pass", r.connect.explain()
    assert r.resolved_version == "0.62.0"
    assert r.connect.runtime_url is not None
    assert r.connect.runtime_url.startswith("http://host.docker.internal:")
    assert r.app_seconds is not None and r.connect.seconds is not None
    assert "--add-host host.docker.internal:host-gateway" in (r.docker_run or "")
    # the cell removed what it made, the runtime OpenHands started included
    assert leftovers(run_id) == []
    assert gone(r.runtime_container)


def test_bridge_fails_on_dns_until_docker_host_addr_points_at_the_gateway(
        cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["0.62-bridge-then-fixed"]
    (r, fixed, gateway), run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause) == ("fail", "dns-unresolved")
    assert any("DNS fail" in e.text for e in r.connect.evidence)
    assert r.connect.seconds is not None and r.connect.seconds < 30  # decided, not timed out

    assert gateway
    assert fixed.connect.verdict == "pass", fixed.connect.explain()
    assert fixed.connect.runtime_url is not None and fixed.connect.runtime_url.startswith(f"http://{gateway}:")
    assert leftovers(run_id) == []


def test_loopback_binding_breaks_host_gateway(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["0.62-loopback"]
    r, run_id = ran.value, ran.run_id
    assert r.connect.verdict == "fail"
    assert r.connect.cause == "connection-refused", r.connect.explain()
    assert any("TCP refused" in e.text for e in r.connect.evidence)
    # decided from what the daemon publishes, not after the runtime boots
    assert "published on 127.0.0.1 only" in r.connect.evidence[0].text
    assert r.connect.seconds is not None and r.connect.seconds < 15
    assert leftovers(run_id) == []


def test_cli_run_writes_results_and_a_cell_failing_as_expected_exits_0(cells: dict[str, Ran[Any]],
                                                                       leftovers: Leftovers) -> None:
    """smoke declares bridge expected to fail on a Linux engine (`[[expect]]`): the run that
    shows it fail so went as expected, and the default gate says so with exit 0."""
    out, canaries = cells["cli-out"].value, CANARIES
    proc = cells["0.62-cli-smoke-bridge"].value
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "exit 0 (--gate surprises): the run went as expected" in proc.stdout
    assert "failed as expected on this host: 0.62-bridge: Docker on Linux gives a container no" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "oh-matrix/1" and data["backend"] == "pypi"
    assert data["oh_matrix_version"]  # which oh-matrix made it
    [cell] = data["cells"]
    assert cell["id"] == "0.62-bridge" and cell["resolved_version"] == "0.62.0"
    assert (cell["connect"]["verdict"], cell["connect"]["cause"]) == ("fail", "dns-unresolved")
    assert (out / "junit.xml").exists()
    assert "FAIL dns-unresolved" in proc.stdout  # the grid
    assert leftovers(data["run_id"]) == []
    # The secrets reached the app container (the app got them)...
    assert cell["app_env"]["OPENAI_API_KEY"] == "<redacted>"
    # ...and appear nowhere in what the run wrote or printed.
    for value in canaries.values():
        assert value not in proc.stdout + proc.stderr
        for f in out.rglob("*"):
            if f.is_file():
                assert value not in f.read_text(errors="replace"), f


@pytest.mark.alone  # a DROP rule on docker0 for every runtime port: no other release test meanwhile (hostturn.py)
def test_firewall_drop_is_a_fast_connect_timeout_and_only_for_bridge_to_host(
        client: docker.DockerClient, v0_images: ImageSet, run_id: str, leftovers: Leftovers) -> None:
    """ufw's default deny, scoped: SYNs from docker0 to the host's runtime ports are dropped.
    The documented command (app on the default bridge -> host.docker.internal) times out,
    and so does polling the gateway; the remedy search finds the two fixes that work here:
    the host network, and a user-defined network (Docker's DNAT, not docker0)."""
    from harness import remedies

    with drop_bridge_to_host(generations.V0.runtime_host_ports or ""):
        blocked = run(v0_images, run_id, "host-gateway")
        tried = remedies.search(blocked, remedies.Context(gateway=docker_host.bridge_gateway(client)),
                                lambda change, _alone: run(v0_images, run_id, change.mode or "host-gateway",
                                                           change.env))
    assert (blocked.connect.verdict, blocked.connect.cause) == ("fail", "connect-timeout"), blocked.connect.explain()
    assert blocked.connect.direction == "app->runtime"
    assert any("TCP timeout" in e.text for e in blocked.connect.evidence)
    assert blocked.connect.seconds is not None and blocked.connect.seconds <= 20  # OpenHands waits 120 s
    assert {t.name: (t.verdict, t.cause) for t in tried} == {
        "docker-host-addr": ("fail", "connect-timeout"), "host-network-trio": ("pass", None),
        "own-network": ("pass", None)}, tried
    assert "--network host" in tried[1].docker_run
    assert leftovers(run_id) == []


def test_a_proxy_the_app_must_not_use_is_named_and_no_proxy_fixes_it(
        cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    """HTTP_PROXY reaches the app (as ~/.docker/config.json proxies do): its httpx client sends
    the runtime's /alive to a proxy that cannot reach it, while the direct path is open."""
    ran = cells["0.62-proxy"]
    (r, tried), run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause) == ("fail", "proxy"), r.connect.explain()
    assert r.connect.seconds is not None and r.connect.seconds < 90  # not OpenHands' 120 s
    assert [(t.name, t.verdict) for t in tried] == [("no-proxy", "pass")]
    assert leftovers(run_id) == []


def test_a_runtime_that_exits_is_named_with_its_exit_code(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["0.62-exiting-runtime"]
    r, run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause) == ("fail", "runtime-exited"), r.connect.explain()
    assert "exit code 3" in r.connect.evidence[0].text
    assert any("the runtime gives up" in e.text for e in r.connect.evidence if e.source == "runtime-log")
    assert leftovers(run_id) == []
