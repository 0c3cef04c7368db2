"""Fixtures for the harness's own tests. A test's kind is its folder (`unit/`: no Docker,
laid out as the package's rooms; `engine/`: Docker, no release; `release/`: a real OpenHands
release, also marked engine), given to it as a marker here, and nox runs each kind
(noxfile.py). Engine tests need a real Docker daemon and fail (not skip) without one: a
green run must mean they ran."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import pytest

from harness import images
from harness.host import cleanup, docker_host
from harness.images import wheels
from harness.images.base import BaseImage, ensure_base
from harness.model import ImageSet, Run

if TYPE_CHECKING:
    from shared import Shared

# 1.x marks a sandbox ERROR once /health has not answered 15 s after the container started.
# On a slow machine its agent-server takes about that long to import (measured on a 2-core
# CI machine: 14-18 s, idle), so the default grace decides at random there, whatever the
# networking. The release tests are about networking: they run 1.x with a grace sized for a
# slow machine, through OH_MATRIX_APP_ENV (below every setting a test makes itself). The
# tests of the grace itself take the default back (test_release_faults.py).
SLOW_MACHINE_GRACE = "SANDBOX_STARTUP_GRACE_SECONDS=60"


@pytest.fixture(autouse=True)
def grace_for_a_slow_machine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("release") and "OH_MATRIX_APP_ENV" not in os.environ:
        monkeypatch.setenv("OH_MATRIX_APP_ENV", SLOW_MACHINE_GRACE)


@pytest.fixture(autouse=True)
def host_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """A release test holds the host shared with the other worker's, or to itself when marked
    `alone` (it changes the host or is about its load): tests/harness/hostturn.py."""
    if not request.node.get_closest_marker("release"):
        yield
        return
    import hostturn

    with hostturn.turn(alone=request.node.get_closest_marker("alone") is not None):
        yield


# Where the release kind's minutes go, in seconds per module (on the 2-core CI machine,
# rounded): the two workers take the longest first, so they end about together (xdist's
# loadscope with --no-loadscope-reorder hands modules out in this order). A module not
# listed goes last.
RELEASE_MINUTES = {  # measured: `--durations=30` of a warm .ci/run at -n 2 (2026-12-07, 2796 s in all)
    "test_release_rootless.py": 480, "test_release_deployments.py": 420, "test_release_userland_proxy.py": 390,
    "test_release_v0.py": 390, "test_release_firewall_reject.py": 360, "test_release_task_files.py": 340,
    "test_interrupts.py": 330, "test_release_tasks.py": 240, "test_release_agent_server.py": 190,
    "test_release_mirror.py": 190, "test_release_remote.py": 190, "test_release_callers.py": 150,
    "test_release_native.py": 150, "test_reports_release.py": 150, "test_release_faults.py": 140,
    "test_release_v1.py": 130, "test_release_no_socket.py": 110, "test_release_own_image.py": 90,
    "test_wheel.py": 80, "test_release_older.py": 60, "test_release_bisect.py": 60, "test_release_true_sources.py": 60,
    "test_release_cli.py": 40,
}
HERE = Path(__file__).resolve().parent
FOLDER_MARKERS = {"unit": ("unit",), "engine": ("engine",), "release": ("engine", "release")}  # a folder's markers


def pytest_itemcollected(item: pytest.Item) -> None:
    """The kind of a test is its folder's (a test anywhere else is an error, never a test no
    kind runs)."""
    folder = item.path.resolve().relative_to(HERE).parts[0] if item.path.resolve().is_relative_to(HERE) else ""
    if folder not in FOLDER_MARKERS:
        raise pytest.UsageError(f"{item.path}: a test of the harness lives in tests/harness/unit, engine or release "
                                "(its kind is its folder)")
    for kind in FOLDER_MARKERS[folder]:
        item.add_marker(kind)


def release_order(items: list[pytest.Item]) -> None:
    """A run of release tests only (`-m release`): longest modules first, and in each module
    the `alone` tests last (`--dist loadscope` keeps a module on one worker: its module-scoped
    cells run once; hostturn.py keeps the other worker out while an `alone` test runs)."""
    if not items or not all(i.get_closest_marker("release") for i in items):
        return
    items.sort(key=lambda i: (-RELEASE_MINUTES.get(i.path.name, 0), i.path.name,
                              i.get_closest_marker("alone") is not None))


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    if os.environ.get("OH_MATRIX_NO_ENGINE") == "1":
        pytest.skip("OH_MATRIX_NO_ENGINE=1: engine tests skipped on purpose")
    return docker_host.client()


@pytest.fixture(scope="session")
def base_image(client: docker.DockerClient) -> BaseImage:
    """The pypi backend's base (Debian + CPython 3.12): a small image with Python in it,
    built once (~1 min cold) and cached."""
    return ensure_base(client, wheels.find_python312())


@pytest.fixture(scope="session")
def v0_images(client: docker.DockerClient) -> ImageSet:
    """The real 0.62 release, built from PyPI (from cache when present)."""
    return images.prepare(client, "0.62", "v0", "pypi")


@pytest.fixture(scope="session")
def v061_images(client: docker.DockerClient) -> ImageSet:
    """The real 0.61 release, built from PyPI plus the sdk commit it really ran with
    (harness/images/true_sources.toml; needs GitHub or OH_MATRIX_SOURCES, which nox sets)."""
    return images.prepare(client, "0.61", "v0", "pypi")


@pytest.fixture(scope="session")
def v1_images(client: docker.DockerClient) -> ImageSet:
    """1.11 (openhands-ai 1.11.0), the newest 1.x release, built from PyPI (from cache when
    present). Named by its number: `latest` names Agent Canvas, another generation."""
    return images.prepare(client, "1.11", "v1", "pypi")


@pytest.fixture(scope="session")
def shared(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """The cells release tests share, run once each (tests/harness/shared.py), swept at the end;
    their phase lines in progress.log of a folder of the session's."""
    from shared import Shared

    across = None
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' basetemps share a parent folder
        across = tmp_path_factory.getbasetemp().parent / "shared-cells"
        across.mkdir(exist_ok=True)
    cells = Shared(client, tmp_path_factory.mktemp("shared"), across=across)
    yield cells
    cells.close()


@pytest.fixture
def run_id(client: docker.DockerClient) -> Iterator[str]:
    """A run id for one test; whatever it labelled is swept after, and the test may assert
    that nothing was left before this sweep runs."""
    rid = f"test-{uuid.uuid4().hex}"
    yield rid
    cleanup.sweep(client, rid)


@pytest.fixture
def gone(client: docker.DockerClient) -> Callable[[str | None], bool]:
    """Whether the runtime/sandbox container OpenHands started for a cell is removed."""

    def check(name: str | None) -> bool:
        assert name and name.startswith(("openhands-runtime-", "oh-agent-server-")), name
        return not client.containers.list(all=True, filters={"name": f"^{name}$"})

    return check


@pytest.fixture
def leftovers(client: docker.DockerClient) -> Callable[[str], list[str]]:
    """Names of the containers and networks a run left behind."""

    def find(run_id: str) -> list[str]:
        filt = {"label": f"{cleanup.RUN_LABEL}={run_id}"}
        names = [c.name for c in client.containers.list(all=True, filters=filt)]
        return names + [n.name for n in client.networks.list(filters=filt)]

    return find


@pytest.fixture
def synthetic_run() -> Callable[..., Run]:
    """A run from `{cell id: verdict}`, for report and merge tests."""

    def build(run_id: str, hostname: str, server: str, verdicts: dict[str, str]) -> Run:
        cells: list[dict[str, Any]] = []
        for cid, v in verdicts.items():
            tag, mode = cid.split("-", 1)
            cells.append({"id": cid, "tag": tag, "mode": mode, "api": "v0", "resolved_version": f"{tag}.0",
                          "docker_run": f"docker run {mode}",
                          "connect": {"verdict": v, "cause": None if v == "pass" else "connect-timeout",
                                      "seconds": 20.0}})
        return Run.model_validate({
            "schema": "oh-matrix/1", "run_id": run_id, "started_at": "2026-11-27T10:00:00+00:00",
            "finished_at": "2026-11-27T10:05:00+00:00", "backend": "pypi",
            "host": {"hostname": hostname, "os": "Debian 12", "server_version": server, "rootless": False},
            "cells": cells})

    return build


@pytest.hookimpl(trylast=True)  # after -m has deselected (release_order looks at what is left)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    release_order(items)
