"""Writing what a run produces: every write is atomic (temp file + rename), so a reader never
sees a truncated file and a full disk leaves the old file intact, with one line of error."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import OutputError
from harness.model import Run
from harness.secrets import scrub


def write_text_atomic(path: Path, text: str) -> None:
    """Temp file + rename: a crash or a full disk leaves the old file, never half a new one.
    Every report, result and fix is written here: the last net for a secret (secrets.scrub)."""
    write_bytes_atomic(path, scrub(text).encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide reports from a web server or CI uploader
        os.replace(tmp, path)
    except BaseException as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_run(out: Path, run: Run) -> Path:
    path = out / "results.json"
    write_text_atomic(path, run.to_json())
    return path
