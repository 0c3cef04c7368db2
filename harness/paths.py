"""Where oh-matrix keeps state between runs on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """Wheels, build checks, locks and the run registry: `$OH_MATRIX_CACHE`, else the user's
    cache folder as platformdirs finds it (`$XDG_CACHE_HOME/oh-matrix`, by default
    ~/.cache/oh-matrix)."""
    root = os.environ.get("OH_MATRIX_CACHE") or platformdirs.user_cache_dir("oh-matrix", appauthor=False)
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
