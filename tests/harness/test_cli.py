"""The CLI's contract for bad input and an unusable daemon: one line, the right exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def oh_matrix(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=120)


def test_malformed_matrix_exit_2_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[targets]]\ntag = '0.62'\n[modes.bridgee]\n")
    r = oh_matrix("run", "--matrix", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "modes.bridgee" in r.stderr


def test_unknown_cell_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "matrices/smoke.toml", "--only", "0.99-host")
    assert r.returncode == 2 and "--only 0.99-host" in r.stderr


def test_bad_app_env_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "matrices/smoke.toml", "--app-env", "NOEQUALS")
    assert r.returncode == 2 and "--app-env" in r.stderr


def test_docker_unreachable_exit_3(tmp_path: Path) -> None:
    r = oh_matrix("run", "--matrix", "matrices/smoke.toml",
                  env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "Docker is not usable" in r.stderr


def test_docker_host_nowhere_exit_3() -> None:
    r = oh_matrix("doctor", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert r.returncode == 3 and "Docker is not usable at tcp://127.0.0.1:1" in r.stderr
