"""The real 1.x release (`latest`, newest openhands-ai on PyPI) with its agent-server
sandbox. V1 connects both ways: the app reaches the sandbox, and the sandbox calls the
app back (MCP, webhooks); a cell passes only when the conversation's start task is READY,
and a failure names the direction that broke."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

from harness.cell import CellPlan
from harness.containers import free_port
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet
from harness.runner import run_cell

pytestmark = [pytest.mark.engine, pytest.mark.release]  # run one at a time: see noxfile.py
Leftovers = Callable[[str], list[str]]
Gone = Callable[[str | None], bool]


def run(images: ImageSet, run_id: str, mode: str, env: dict[str, str] | None = None) -> CellResult:
    cell = Cell(Target("latest", "v1"), ModeChoice(mode))
    return run_cell(CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150))


def test_latest_resolves_to_a_1x_release(v1_images: ImageSet) -> None:
    major, minor = (int(x) for x in v1_images.resolved_version.split(".")[:2])
    assert (major, minor) >= (1, 11)
    assert v1_images.api == "v1"
    assert v1_images.runtime_image.startswith("ghcr.io/openhands/agent-server:")


def test_documented_command_reaches_ready(client: docker.DockerClient, v1_images: ImageSet, run_id: str,
                                          leftovers: Leftovers,
        gone: Gone) -> None:
    r = run(v1_images, run_id, "host-gateway")
    assert r.connect.verdict == "pass", r.connect.explain()
    assert r.connect.runtime_url is not None and r.connect.runtime_url.startswith("http://host.docker.internal:")
    assert "-p 3000:3000" in (r.docker_run or "")
    assert leftovers(run_id) == [] and gone(r.runtime_container)


def test_callback_refused_names_the_sandbox_to_app_direction(client: docker.DockerClient, v1_images: ImageSet,
                                                             run_id: str, leftovers: Leftovers,
        gone: Gone) -> None:
    # A person who publishes the app elsewhere and leaves SANDBOX_HOST_PORT pointing at a
    # port where nothing listens: the app reaches the sandbox, the sandbox cannot call back.
    nothing = free_port()
    r = run(v1_images, run_id, "host-gateway", {"SANDBOX_HOST_PORT": str(nothing)})
    assert r.connect.verdict == "fail"
    assert r.connect.cause == "connection-refused", r.connect.explain()
    why = r.connect.evidence[0].text
    assert why.startswith("sandbox -> app (callback)") and f":{nothing}" in why
    assert any(e.text.startswith("from sandbox (network default)") for e in r.connect.evidence)
    assert leftovers(run_id) == [] and gone(r.runtime_container)


def test_bridge_cannot_resolve_the_sandbox_address(client: docker.DockerClient, v1_images: ImageSet, run_id: str,
                                                   leftovers: Leftovers,
        gone: Gone) -> None:
    r = run(v1_images, run_id, "bridge")
    assert (r.connect.verdict, r.connect.cause) == ("fail", "dns-unresolved"), r.connect.explain()
    assert r.connect.evidence[0].text.startswith("app -> runtime")
    assert leftovers(run_id) == [] and gone(r.runtime_container)
