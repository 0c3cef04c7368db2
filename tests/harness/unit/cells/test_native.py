"""The native mode's parts that need no Docker and no registry: the launcher's output read
(its own `[service]` lines, the exception an agent-server died of, the environment uvx made),
the person's command, the launcher's environment, the mode in the registry, and the process
registry that ends a cell's processes, whole groups, as a sweep ends a dead run's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import generations, modes
from harness.cells import native
from harness.cells.native import LauncherLog
from harness.host import cleanup, processes

DATA = Path(__file__).resolve().parents[2] / "data"
# 1.16.0's launcher run on 2026-12-07 (trimmed): its agent-server died at import.
LOG = LauncherLog.of((DATA / "canvas-1.16.0-native-launcher.log").read_text())


def test_the_launchers_own_lines_say_which_service_died_and_of_what() -> None:
    assert LOG.exited("agent-server") == 1
    assert LOG.exited("automation") is None and LOG.exited("ingress") is None
    assert LOG.exception("agent-server") == "TypeError: Query() got an unexpected keyword argument 'lte'"
    file, line, code = LOG.frame("agent-server") or ("", 0, "")
    assert file.endswith("site-packages/openhands/agent_server/bash_router.py") and line == 55
    assert code == 'Query(title="The max number of results in the page", gt=0, lte=100),'
    assert LOG.line("agent-server", "Using ") == "[agent-server] Using PyPI (1.44.0, default)"
    assert LOG.line("agent-server", "Timeout waiting") == (
        "[agent-server] Timeout waiting for http://127.0.0.1:18000/server_info after 60s")
    assert LOG.line("ingress", "Starting on port") == "[ingress] Starting on port 47123..."


def test_a_log_with_no_death_says_none() -> None:
    alive = LauncherLog.of("\x1b[2m15:11:57\x1b[0m \x1b[34m[agent-server]\x1b[0m Starting on port 18000...\n"
                           "[ports] Checking ports...\n")
    assert alive.exited("agent-server") is None and alive.exception("agent-server") is None
    assert alive.frame("agent-server") is None
    # a warning that names an error is not the exception a service died of
    warned = LauncherLog.of("15:12:04 [agent-server] 15:12:04 - LiteLLM:WARNING: fetch failed (ConnectError x)\n")
    assert warned.exception("agent-server") is None


def test_the_environment_uvx_made_is_read_from_the_traceback(tmp_path: Path) -> None:
    site = tmp_path / "archive-v0" / "X" / "lib" / "python3.12" / "site-packages"
    for d in ("fastapi-0.165.0.dist-info", "starlette-1.7.0.dist-info", "openhands_sdk-1.58.2.dist-info",
              "litellm-1.98.0.dist-info"):
        (site / d).mkdir(parents=True)
    where = native.site_packages(str(site / "openhands" / "agent_server" / "bash_router.py"))
    assert where == site
    assert native.installed(site) == {"fastapi": "0.165.0", "openhands-sdk": "1.58.2", "starlette": "1.7.0"}
    assert native.site_packages("/usr/lib/python3.12/asyncio/runners.py") is None


def test_the_persons_command_carries_their_settings_and_none_of_the_harnesss() -> None:
    env = native.person_env({"UV_EXCLUDE_NEWER": "2026-08-28T14:05:16Z", "OH_MATRIX_APP_ENV": "x"})
    assert native.person_line("1.16.0", env) == ("UV_EXCLUDE_NEWER=2026-08-28T14:05:16Z "
                                                 "npx @openhands/agent-canvas@1.16.0")
    assert native.person_line("1.16.0", {}) == "npx @openhands/agent-canvas@1.16.0"


def test_the_launcher_gets_a_home_of_the_cells_own_and_its_tools_first_on_path(tmp_path: Path) -> None:
    outer = {"HOME": "/root", "PATH": "/root/.venv/bin:/usr/bin", "SSL_CERT_FILE": "/etc/ssl/c.pem",
             "https_proxy": "http://proxy:3128", "PYTEST_XDIST_WORKER": "gw0", "VIRTUAL_ENV": "/root/.venv",
             "LOCAL_BACKEND_API_KEY": "mine"}
    env = native.launcher_env(tmp_path / "home", tmp_path / "bin", {"LOG_ALL_EVENTS": "true"}, outer)
    assert env["HOME"] == str(tmp_path / "home") and env["PATH"].startswith(f"{tmp_path / 'bin'}:")
    assert env["SSL_CERT_FILE"] == "/etc/ssl/c.pem" and env["https_proxy"] == "http://proxy:3128"
    assert env["LOG_ALL_EVENTS"] == "true"
    # nothing of the harness's process, nor a key the user happens to have set for their own stack
    assert not {"PYTEST_XDIST_WORKER", "VIRTUAL_ENV", "LOCAL_BACKEND_API_KEY"} & set(env)


def test_native_is_a_host_process_mode_that_holds_the_launchers_fixed_ports() -> None:
    mode = modes.get("native")
    assert getattr(mode, "host_process", False) and mode.shares_host_ports and not mode.networks
    assert sorted(modes.fixed_host_ports(mode, generations.CANVAS)) == [3001, 18000, 18001]
    with pytest.raises(ValueError, match="host process"):
        mode.launch(generations.CANVAS, image="x", env={}, host_port=8000)
    assert not any(getattr(m, "host_process", False) for n, m in modes.MODES.items() if n != "native")


def test_a_marker_is_the_owner_the_run_and_the_cell() -> None:
    value = processes.marker(cleanup.owner(), "run1", "canvas-1.16-native")[processes.MARKER]
    assert processes.parse(value) == (cleanup.owner(), "run1", "canvas-1.16-native")
    assert processes.parse("garbage") is None and processes.parse("a//c") is None


# A process that starts a child in a process group of its own, as the launcher spawns its
# services (`detached: true`), then waits.
SPAWNER = ("import subprocess, sys, time\n"
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
           "time.sleep(120)\n")


def _wait_for(predicate: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_a_cells_processes_end_with_it_every_group_they_started(tmp_path: Path) -> None:
    run = f"unit-{os.getpid()}"
    with processes.started([sys.executable, "-c", SPAWNER], dict(os.environ), tmp_path, tmp_path / "log",
                           cleanup.owner(), run, "cell-a") as p:
        assert _wait_for(lambda: len(processes.find(run, "cell-a")) == 2)
        found = processes.find(run, "cell-a")
        assert len({m.pgid for m in found}) == 2 and p.pid in {m.pid for m in found}
    assert _wait_for(lambda: not processes.find(run), 5.0)


def test_an_interrupt_ends_them_too(tmp_path: Path) -> None:
    run = f"unit-int-{os.getpid()}"
    with contextlib.suppress(KeyboardInterrupt), \
            processes.started([sys.executable, "-c", SPAWNER], dict(os.environ), tmp_path, tmp_path / "log",
                              cleanup.owner(), run, "c"):
        assert _wait_for(lambda: len(processes.find(run)) == 2)
        raise KeyboardInterrupt
    assert _wait_for(lambda: not processes.find(run), 5.0)


def test_the_sweep_ends_a_dead_owners_processes_and_leaves_a_live_ones(tmp_path: Path) -> None:
    """A worker killed mid-cell never ran its teardown: its processes carry an owner that is
    gone, and the next sweep ends them; a live run's are left alone."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone_owner = f"{cleanup.owner().rpartition(':')[0]}:{dead.stdout.strip()}"
    run_dead, run_live = f"unit-dead-{os.getpid()}", f"unit-live-{os.getpid()}"
    started = []
    for run, owner in ((run_dead, gone_owner), (run_live, cleanup.owner())):
        env = {**os.environ, processes.MARKER: f"{owner}/{run}/cell"}
        started.append(subprocess.Popen([sys.executable, "-c", SPAWNER], env=env, start_new_session=True))
    try:
        assert _wait_for(lambda: len(processes.find(run_dead)) == 2 and len(processes.find(run_live)) == 2)
        ended = processes.sweep(cleanup._owner_alive)
        assert len([e for e in ended if "time.sleep" in e or "subprocess" in e]) >= 2
        assert _wait_for(lambda: not processes.find(run_dead), 5.0)
        assert len(processes.find(run_live)) == 2
    finally:
        processes.end(processes.find(run_live) + processes.find(run_dead), grace=1.0)
        for p in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
