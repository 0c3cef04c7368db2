"""The plugin is inert in a pytest that names no matrix: the `pytest11` entry point loads it
in every pytest of the environment, whose own tests must not feel it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import options

# A user's project: its tests read testcontainers' Ryuk setting, and one has a `cell` argument
# of its own (the matrix tests' parameter name), given by the project's own parametrize.
PROJECT_TEST = '''
import pytest


def test_ryuk():
    from testcontainers.core.config import testcontainers_config
    print("RYUK_DISABLED", testcontainers_config.ryuk_disabled)


@pytest.mark.parametrize("cell", ["mine"])
def test_my_own_cell(cell):
    assert cell == "mine"
'''


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_project.py").write_text(PROJECT_TEST)
    return tmp_path


def test_a_users_tests_keep_ryuk_and_their_own_parameters(project: Path) -> None:
    with_plugin = pytest_in(project, "-s", "-q")
    without = pytest_in(project, "-s", "-q", "-p", "no:oh-matrix")
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert "RYUK_DISABLED False" in with_plugin.stdout  # testcontainers' own default, untouched
    assert "RYUK_DISABLED False" in without.stdout and "2 passed" in with_plugin.stdout


def test_no_option_of_ours_is_unprefixed_in_a_users_pytest(project: Path) -> None:
    said = pytest_in(project, "--help").stdout
    for o in options.RUN:
        flag = o.named(options.PYTEST_PREFIX)[0]
        assert f"{flag}=" in said or f"{flag} " in said, flag
        bare = [line for line in said.splitlines() if line.strip().startswith((f"{o.flag}=", f"{o.flag} "))]
        assert not bare, bare
    # nor in pytest's namespace of options, where another plugin's `out` would meet ours
    (project / "conftest.py").write_text("def pytest_configure(config):\n"
                                         "    print('DESTS', sorted(vars(config.option)))\n")
    dests = next(line for line in pytest_in(project, "-q", "-s").stdout.splitlines() if line.startswith("DESTS"))
    for o in options.RUN:
        assert repr(o.named(options.PYTEST_PREFIX)[1]) in dests and repr(o.dest) not in dests, o.dest
    fixtures = pytest_in(project, "--fixtures").stdout
    assert "connect_result" not in fixtures and "task_result" not in fixtures


def test_loading_the_plugin_imports_nothing_heavy(project: Path) -> None:
    """What makes a user's pytest slow or changes it: docker, testcontainers, pydantic's
    model, the cells and the workflow, xdist's scheduler."""
    code = ("import sys, harness.plugin; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'testcontainers', "
            "'httpx', 'pydantic', 'xdist') or m in ('harness.workflow', 'harness.model', 'harness.cells.runner'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=project)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == [], loaded.stdout


def test_a_pytest_that_names_a_matrix_walks_the_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--oh-matrix` wakes it: the inputs are checked (a bad flag is pytest's usage error, one
    line), then the daemon is asked (none here: the same one line)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    bad = pytest_in(project, "--oh-matrix", "smoke", "--oh-only", "0.62-nowhere")
    assert bad.returncode == pytest.ExitCode.USAGE_ERROR and "--only 0.62-nowhere: no such cell" in bad.stderr
    nodaemon = pytest_in(project, "--oh-matrix", "smoke", "--oh-out", str(project / "out"))
    assert nodaemon.returncode == pytest.ExitCode.USAGE_ERROR and "Docker is not usable" in nodaemon.stderr
