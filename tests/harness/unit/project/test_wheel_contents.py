"""The built wheel holds everything a run needs: the matrix tests and their pytest.ini, the
shipped matrices and task files, the report's template, the plugin's and the command's entry
points (release/test_wheel.py installs it and runs a cell from an empty folder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import wheelbuild


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheelbuild.build(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_the_suite_the_matrices_and_the_plugin(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in ("harness/suite/test_connect.py", "harness/suite/test_tasks.py", "harness/suite/pytest.ini",
                  "harness/matrices/default.toml", "harness/matrices/smoke.toml",
                  "harness/matrices/tasks/example.toml", "harness/report/templates/report.html.j2"):
            assert f in names, f"{f} is not in {wheel.name}"
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        [entry] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = z.read(entry).decode()
        metadata = z.read(meta).decode()
    assert "[pytest11]\noh-matrix = harness.plugin" in entry_points
    assert "oh-matrix = harness.cli:main" in entry_points
    assert "License-Expression: MIT" in metadata


