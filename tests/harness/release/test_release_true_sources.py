"""The real 0.61 release, built from the sdk commit it really ran with (its tag's lock, not
its wheel's PyPI pins): the app imports and reaches its runtime as people start it."""

from __future__ import annotations

import json
from collections.abc import Callable

import docker

from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.matrix import Cell, ModeChoice, Target
from harness.model import ImageSet

COMMIT = "be9725b459c0afabc18cfba89acf11dc756b42f0"
REPO = "OpenHands/software-agent-sdk"
PACKAGES = ["openhands-sdk", "openhands-tools", "openhands-agent-server"]

PROBE = f"""
import importlib.metadata as m, json
import openhands.server.listen
print(json.dumps({{p: [m.version(p), m.distribution(p).read_text("direct_url.json") or ""] for p in {PACKAGES!r}}}))
"""


def test_0_61_imports_with_the_sdk_of_its_commit(client: docker.DockerClient, v061_images: ImageSet) -> None:
    s = v061_images
    assert (s.resolved_version, s.backend) == ("0.61.0", "pypi")
    assert sorted(e["package"] for e in s.sources) == sorted(PACKAGES)
    assert all((e["repo"], e["commit"]) == (REPO, COMMIT) for e in s.sources), s.sources
    assert any(f"{REPO}@{COMMIT}" in n and "poetry.lock" in n for n in s.notes), s.notes
    assert COMMIT in client.images.get(s.app_image).labels["oh-matrix.sources"]
    assert COMMIT in client.images.get(s.runtime_image).labels["oh-matrix.sources"]
    out = client.containers.run(s.app_image, ["python", "-c", PROBE], network_mode="none", remove=True)
    installed = json.loads(out.decode().strip().splitlines()[-1])
    for package in PACKAGES:
        version, origin = installed[package]
        # the git build (it calls itself 1.0.0a5), from the wheelhouse's sources/, not PyPI's 1.0.0a6
        assert version == "1.0.0a5", installed
        assert "/wheels/sources/" in origin, installed


def test_0_61_documented_command_reaches_ready(v061_images: ImageSet, run_id: str,
                                               leftovers: Callable[[str], list[str]]) -> None:
    cell = Cell(Target(v061_images.tag, "v0"), ModeChoice("host-gateway"))
    r = run_cell(CellPlan(run_id, cell, v061_images, {}, connect_budget=150, app_budget=150))
    assert r.connect.verdict == "pass", r.connect.explain()
    assert r.resolved_version == "0.61.0"
    assert leftovers(run_id) == []
