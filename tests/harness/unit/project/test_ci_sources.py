"""CI and the test sessions find the source archives of commits releases really ran with
(the 0.61.0 sdk), in both layouts this project is checked out in, and a caller's choice wins."""

import importlib.util
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[4]


def _layout(tmp_path: Path, repo: str, shared: str) -> Path:
    """A checkout at `repo` (relative to tmp_path) with .ci/run and noxfile.py, stub setup and
    nox, and a shared/sources folder at `shared`."""
    where = tmp_path / repo
    (where / ".ci").mkdir(parents=True)
    (where / "scripts").mkdir()
    for name in (".ci/run", "noxfile.py"):
        (where / name).write_text((ROOT / name).read_text())
    (where / ".ci" / "run").chmod(0o755)
    (where / "scripts" / "setup").write_text("#!/bin/sh\nexit 0\n")
    (where / "scripts" / "setup").chmod(0o755)
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin" / "nox").write_text('#!/bin/sh\necho "OH_MATRIX_SOURCES=${OH_MATRIX_SOURCES:-}"\n')
    (tmp_path / "bin" / "nox").chmod(0o755)
    (tmp_path / shared).mkdir(parents=True)
    return where


# loading a second copy of the noxfile registers its sessions again: harmless here
@pytest.mark.filterwarnings("ignore:The session .* has already been registered:FutureWarning")
@pytest.mark.parametrize(("repo", "shared"), [("wt/issue12", "shared/sources"), ("main", "shared/sources")],
                         ids=["worktree", "checkout"])
def test_ci_and_nox_find_the_shared_source_archives(tmp_path: Path, repo: str, shared: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    where = _layout(tmp_path, repo, shared)
    expected = str((tmp_path / shared).resolve())
    env = {k: v for k, v in os.environ.items() if k != "OH_MATRIX_SOURCES"}
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    out = subprocess.run([str(where / ".ci" / "run")], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"OH_MATRIX_SOURCES={expected}"
    # the caller's choice wins
    out = subprocess.run([str(where / ".ci" / "run")], env={**env, "OH_MATRIX_SOURCES": "/elsewhere"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "OH_MATRIX_SOURCES=/elsewhere"

    spec = importlib.util.spec_from_file_location(f"noxfile_{repo.replace('/', '_')}", where / "noxfile.py")
    assert spec and spec.loader
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    monkeypatch.delenv("OH_MATRIX_SOURCES", raising=False)
    session = SimpleNamespace(env={})
    noxfile._sources(session)
    assert session.env == {"OH_MATRIX_SOURCES": expected}
    monkeypatch.setenv("OH_MATRIX_SOURCES", "/elsewhere")
    session = SimpleNamespace(env={})
    noxfile._sources(session)
    assert session.env == {}
