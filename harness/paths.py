"""Where oh-matrix keeps state between runs on this machine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

from harness.errors import InputError

CACHE_ENV = "OH_MATRIX_CACHE"


def _chosen() -> tuple[Path, str]:
    """The cache folder and what chose it, for the one line that names it when it is unusable."""
    if raw := os.environ.get(CACHE_ENV):
        return Path(raw), f"{CACHE_ENV}={raw}"
    path = Path(platformdirs.user_cache_dir("oh-matrix", appauthor=False))
    return path, f"the cache folder {path} (set {CACHE_ENV} to choose another)"


def cache_root() -> Path:
    """Wheels, build checks, locks and the run registry: `$OH_MATRIX_CACHE`, else the user's
    cache folder as platformdirs finds it (`$XDG_CACHE_HOME/oh-matrix`, by default
    ~/.cache/oh-matrix). A folder that cannot be made (a file in its way, no permission) is
    the user's input, named in one line: never an OSError deep in a build or a Docker call."""
    path, named = _chosen()
    if path.exists() and not path.is_dir():
        raise InputError(f"{named}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file higher up, no permission
        raise InputError(f"{named}: cannot make the cache folder: {e.strerror or e}") from None
    return path


def check_cache() -> None:
    """The cache folder can be made and written (a real write: permission bits say nothing
    for root or a read-only mount), checked before anything reads or writes there."""
    path = cache_root()
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".oh-matrix-probe-"):
            pass
    except OSError as e:
        raise InputError(f"{_chosen()[1]}: cannot write in {path}: {e.strerror or e}") from None
