"""The package as a user installs it: the built wheel, in a fresh virtual environment, run
from an empty folder. Everything a run needs (the matrix tests and their pytest.ini, the
shipped matrices and task files, the pytest plugin's entry point) must be inside it."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import clirun
import pytest
import wheelbuild

from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheelbuild.build(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_runs_a_cell_from_an_empty_folder(wheel: Path, v0_images: ImageSet, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_ = env_dir / "bin"
    r = subprocess.run([str(bin_ / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    here = tmp_path / "empty"
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{bin_}:{env['PATH']}"

    version = clirun.run([str(bin_ / "oh-matrix"), "--version"], cwd=here, timeout=60, env=env)
    assert version.returncode == 0 and version.stdout.startswith("oh-matrix 0."), version
    # plain pytest: the plugin through its entry point, the matrix tests found in the package
    collected = clirun.run([str(bin_ / "pytest"), "--oh-matrix", "smoke", "--oh-backend", "pypi", "--oh-only",
                            "0.62-host-gateway", "--collect-only", "-q", "-p", "no:xdist", "--oh-out", "collected"],
                           cwd=here, timeout=300, env=env)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert "test_connect.py::test_connect[0.62-host-gateway]" in collected.stdout, collected.stdout[-2000:]

    run = clirun.run([str(bin_ / "oh-matrix"), "run", "--matrix", "smoke", "--backend", "pypi",
                      "--only", "0.62-host-gateway", "--out", "out", "-n", "1"], cwd=here, timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    data = json.loads((here / "out" / "results.json").read_text())
    [cell] = data["cells"]
    assert cell["id"] == "0.62-host-gateway" and cell["connect"]["verdict"] == "pass"
    assert [t["verdict"] for t in cell["tasks"]] == ["pass"] * 5, cell["tasks"]
    # the phases as they happened, in the terminal and in the report folder
    phases = (here / "out" / "progress.log").read_text()
    for said in ("0.62-host-gateway", "app oh-matrix-", "app's API up after", "conversation created",
                 "connect: pass after", "task create-file: started", "task repo: pass after"):
        assert said in phases and said in run.stdout, said
    assert run.stdout.index("connect: pass after") < run.stdout.index("0.62-host-gateway                PASS")
    assert not (ROOT / "reports" / "out").exists()  # nothing written into the checkout
    assert sorted(p.name for p in here.iterdir()) == ["collected", "history.jsonl", "out"]
    assert not (here / "collected" / "results.json").exists()  # a collect-only run writes no results
    assert len((here / "history.jsonl").read_text().splitlines()) == 1  # and no history line: only the run
