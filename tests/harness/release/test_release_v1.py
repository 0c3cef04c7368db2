"""The real 1.x release (`1.11`, the app server's newest openhands-ai on PyPI) with its agent-server
sandbox. V1 connects both ways: the app reaches the sandbox, and the sandbox calls the
app back (MCP, webhooks); a cell passes only when the conversation's start task is READY,
and a failure names the direction that broke.

One real run, many assertions (tests/harness/shared.py): the documented command's, the
refused callback's and bridge's cells run before the first test, one after the other (a 1.x
app takes every sandbox on its daemon for its own: shared.one_1x_at_a_time); the documented
command's is the session's 1.11 host-gateway cell, which also runs test_release_tasks.py's
catalog. The host network's remedies change the host (a
hosts line), so that test runs after them, alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from shared import HOST_GATEWAY, Ran, Shared, host_gateway, one_1x_at_a_time

from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.host.containers import free_port
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet

Leftovers = Callable[[str], list[str]]
Gone = Callable[[str | None], bool]


def run(images: ImageSet, run_id: str, mode: str, env: dict[str, str] | None = None) -> CellResult:
    cell = Cell(Target("1.11", "v1"), ModeChoice(mode))
    return run_cell(CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150))


def refused_callback(images: ImageSet) -> Callable[[str], tuple[CellResult, int]]:
    """A person who publishes the app elsewhere and leaves SANDBOX_HOST_PORT pointing at a
    port where nothing listens: the app reaches the sandbox, the sandbox cannot call back."""
    def cell(run_id: str) -> tuple[CellResult, int]:
        nothing = free_port()
        return run(images, run_id, "host-gateway", {"SANDBOX_HOST_PORT": str(nothing)}), nothing
    return cell


@pytest.fixture(scope="module")
def cells(shared: Shared, v1_images: ImageSet) -> dict[str, Ran[Any]]:
    """The cells of this module but the host network's, one after the other (1.x cells of a
    batch run one at a time: shared.one_1x_at_a_time); the test functions stay one theme each."""
    return shared.run({
        HOST_GATEWAY.format(v1_images.tag): host_gateway(v1_images),
        "1.11-refused-callback": one_1x_at_a_time(refused_callback(v1_images)),
        "1.11-bridge": one_1x_at_a_time(lambda run_id: run(v1_images, run_id, "bridge")),
    })


def test_the_app_servers_newest_is_a_1x_release_named_1_11(v1_images: ImageSet) -> None:
    """`latest` is Agent Canvas now (test_release_deployments.py, the default matrix); the app
    server's 1.x is named by its number: 1.11 resolves to its newest patch, the last release."""
    major, minor = (int(x) for x in v1_images.resolved_version.split(".")[:2])
    assert (major, minor) >= (1, 11)
    assert v1_images.api == "v1"
    assert v1_images.runtime_image.startswith("ghcr.io/openhands/agent-server:")


def test_documented_command_reaches_ready(cells: dict[str, Ran[Any]], leftovers: Leftovers, gone: Gone) -> None:
    ran = cells["1.11-host-gateway"]
    r, run_id = ran.value, ran.run_id
    assert r.connect.verdict == "pass", r.connect.explain()
    assert r.connect.runtime_url is not None and r.connect.runtime_url.startswith("http://host.docker.internal:")
    assert "-p 3000:3000" in (r.docker_run or "")
    assert leftovers(run_id) == [] and gone(r.runtime_container)


def test_callback_refused_names_the_sandbox_to_app_direction(cells: dict[str, Ran[Any]], leftovers: Leftovers,
                                                             gone: Gone) -> None:
    ran = cells["1.11-refused-callback"]
    (r, nothing), run_id = ran.value, ran.run_id
    assert r.connect.verdict == "fail"
    assert r.connect.cause == "connection-refused", r.connect.explain()
    why = r.connect.evidence[0].text
    assert why.startswith("sandbox -> app (callback)") and f":{nothing}" in why
    assert any(e.text.startswith("from sandbox (network default)") for e in r.connect.evidence)
    assert leftovers(run_id) == [] and gone(r.runtime_container)


def test_bridge_cannot_resolve_the_sandbox_address(cells: dict[str, Ran[Any]], leftovers: Leftovers,
                                                   gone: Gone) -> None:
    ran = cells["1.11-bridge"]
    r, run_id = ran.value, ran.run_id
    assert (r.connect.verdict, r.connect.cause) == ("fail", "dns-unresolved"), r.connect.explain()
    assert r.connect.evidence[0].text.startswith("app -> runtime")
    assert leftovers(run_id) == [] and gone(r.runtime_container)


@pytest.mark.alone  # a hosts line on this host (a remedy): no other release test meanwhile (hostturn.py)
def test_1_11_on_the_host_network_is_explained_and_the_callback_remedies_are_proven(
        client: docker.DockerClient, v1_images: ImageSet, run_id: str, leftovers: Leftovers) -> None:
    """`--network host` with 1.x: the sandbox joins the host network, gets a copy of the host's
    /etc/hosts (no host.docker.internal), and cannot call the app back. Each callback setting is
    tried alone and together by a real rerun; only both at once (MCP and a webhook the sandbox
    reaches) make the cell pass, and the host change (a hosts line) does too."""
    from harness import remedies

    r = run(v1_images, run_id, "host")
    assert (r.connect.verdict, r.connect.cause, r.connect.direction) == \
        ("fail", "dns-unresolved", "sandbox->app"), r.connect.explain()
    probe = next(e.text for e in r.connect.evidence if e.text.startswith("from sandbox"))
    assert "network host, /etc/hosts copied from the host" in probe and "not in /etc/hosts" in probe, probe

    def rerun(change: remedies.Change, alone: bool) -> CellResult:
        return run_cell(CellPlan(run_id, Cell(Target("1.11", "v1"), ModeChoice(change.mode or "host")), v1_images,
                                 change.env, connect_budget=150, app_budget=150, alone=alone))

    tried = {t.name: t for t in remedies.search(r, remedies.Context(gateway="172.17.0.1", mode="host"), rerun)}
    assert (tried["v1-web-url"].verdict, tried["v1-web-url"].direction) == ("fail", "sandbox->app")  # webhooks
    assert tried["v1-extra-webhook"].verdict == "fail"  # MCP still unreachable
    both = tried["v1-callback-urls"]
    assert both.verdict == "pass", both
    assert "OH_WEB_URL=http://127.0.0.1:3000" in (both.docker_run or "")
    assert "OH_WEBHOOKS_1_BASE_URL" in (both.docker_run or "")
    hosts = tried["v1-hosts-entry"]
    assert hosts.verdict == "pass" and hosts.asks == 2 and "removed after it" in (hosts.host_change or ""), hosts
    assert "host.docker.internal" not in Path("/etc/hosts").read_text()  # undone
    assert leftovers(run_id) == []
