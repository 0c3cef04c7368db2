"""README's first command on a fresh clone with the distribution's own Python: scripts/setup
with only Debian's /usr/bin/python3 on PATH (externally managed, PEP 668), then README's
next commands, `oh-matrix --version` and `nox --list`, from the links setup made."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DISTRO_PYTHON = Path("/usr/bin/python3")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# Needs a Docker engine that answers (setup would otherwise install and start one).


def _fresh_clone(dest: Path) -> None:
    """The checkout's files as a clone would have them (tracked and new, not ignored), so
    the test also covers changes not committed yet."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.skipif(not DISTRO_PYTHON.exists(), reason="no distribution python3 at /usr/bin/python3")
def test_setup_with_the_distributions_python(tmp_path: Path) -> None:
    externally_managed = list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))
    clone, bin_dir = tmp_path / "oh-matrix", tmp_path / "bin"
    _fresh_clone(clone)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "VIRTUAL_ENV", "PYTHON", "NOX"))}
    env.update(PATH=SYSTEM_PATH, OH_MATRIX_BIN_DIR=str(bin_dir))
    assert shutil.which("python3", path=SYSTEM_PATH) == str(DISTRO_PYTHON)
    r = subprocess.run(["scripts/setup"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"into {clone}/.venv" in r.stdout and str(DISTRO_PYTHON) in r.stdout, r.stdout
    if externally_managed:  # the reason for the venv: a plain pip install is refused here
        plain = subprocess.run([str(DISTRO_PYTHON), "-m", "pip", "install", "--dry-run", "nox"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert "externally-managed-environment" in plain.stderr
    # README's next commands, in a shell whose PATH has the link folder (as /usr/local/bin is)
    env["PATH"] = f"{bin_dir}:{SYSTEM_PATH}"
    version = subprocess.run(["oh-matrix", "--version"], cwd=clone, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("oh-matrix "), version.stderr
    listed = subprocess.run(["nox", "--list"], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "matrix" in listed.stdout and "tests" in listed.stdout, listed.stderr
    assert os.path.realpath(bin_dir / "nox") == str(clone / ".venv" / "bin" / "nox")
