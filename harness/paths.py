"""Where oh-matrix keeps state between runs on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Wheels, build checks, locks and the run registry (`$OH_MATRIX_CACHE`, else ~/.cache/oh-matrix)."""
    root = os.environ.get("OH_MATRIX_CACHE") or str(Path.home() / ".cache" / "oh-matrix")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
