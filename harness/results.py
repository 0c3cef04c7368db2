"""The results model and results.json (schema `oh-matrix/1`, see DESIGN.md).

Under xdist each worker writes one fragment per cell (`DIR/cells/<id>.json`); the
controller joins them into `DIR/results.json`. Every write is atomic (temp file + rename),
so a reader never sees a truncated file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError, OutputError

SCHEMA = "oh-matrix/1"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colour codes in OpenHands' logs
VERDICTS = ("pass", "fail", "error", "skip")
CAUSES = (
    "dns-unresolved", "connection-refused", "connect-timeout", "proxy", "runtime-exited",
    "runtime-missing", "app-exited", "image-unavailable", "api-error", "budget-exceeded",
    # Not in DESIGN.md's table: the daemon refused the harness's own set-up (network or
    # container creation) for a reason that is none of the above. Kept apart so an
    # infrastructure error is never reported as an OpenHands failure.
    "harness-error",
)


@dataclass
class Evidence:
    source: str  # probe | runtime | app | app-log | runtime-log | api | harness
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Connect:
    verdict: str
    cause: str | None = None
    seconds: float | None = None  # conversation created -> verdict
    runtime_url: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    reason: str | None = None  # for skip: why not applicable
    direction: str | None = None  # app->runtime | sandbox->app, when the network broke
    transient: bool = False  # failed for a reason of the moment (see diagnosis.Decision)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if self.verdict in ("fail", "error") and self.cause not in CAUSES:
            raise ValueError(f"a {self.verdict} needs a cause from {CAUSES}, got {self.cause!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = [e.to_dict() for e in self.evidence]
        return d

    def explain(self) -> str:
        """The verdict and every piece of evidence, whole (an assertion message, a log line)."""
        head = f"{self.verdict} {self.cause or ''} after {self.seconds} s".replace("  ", " ")
        return "\n".join([head] + [f"[{e.source}] {e.text}" for e in self.evidence])


@dataclass
class CellResult:
    id: str
    tag: str
    mode: str
    api: str
    connect: Connect
    entrypoint: str = "api"  # api (the app server) | headless (V0's openhands.core.main)
    resolved_version: str | None = None
    backend: str | None = None
    app_image: str | None = None
    runtime_image: str | None = None
    runtime_container: str | None = None  # the runtime/sandbox OpenHands started for this cell
    app_seconds: float | None = None
    docker_run: str | None = None
    app_env: dict[str, str] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    remedies: list[dict[str, Any]] = field(default_factory=list)
    socket_mounted_in: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["connect"] = self.connect.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        c = dict(d["connect"])
        c["evidence"] = [Evidence(**e) for e in c.get("evidence") or []]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in d.items() if k in known}, "connect": Connect(**c)})


def strip_ansi(text: str | None) -> str:
    return _ANSI.sub("", text or "")


def write_text_atomic(path: Path, text: str) -> None:
    """Temp file + rename: a crash or a full disk leaves the old file, never half a new one."""
    write_bytes_atomic(path, text.encode("utf-8"))


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


def write_cell(out: Path, cell: CellResult) -> None:
    write_json(out / "cells" / f"{cell.id}.json", cell.to_dict())


def read_cells(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


def read_cell(out: Path, cell_id: str) -> CellResult | None:
    path = out / "cells" / f"{cell_id}.json"
    return CellResult.from_dict(json.loads(path.read_text())) if path.is_file() else None


def build_run(run_id: str, started_at: str, finished_at: str, backend: str,
              host: dict[str, Any], cells: list[dict[str, Any]], order: list[str],
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rank = {cid: i for i, cid in enumerate(order)}
    cells = sorted(cells, key=lambda c: rank.get(c["id"], len(rank)))
    return {
        "schema": SCHEMA, "run_id": run_id, "started_at": started_at, "finished_at": finished_at,
        "backend": backend, "host": host, "cells": cells, "recommendation": {},
        **(extra or {}),
    }


def read_run(directory: str) -> dict[str, Any]:
    """A past run's results.json; a missing, broken or foreign file is an input error."""
    path = Path(directory) / "results.json"
    try:
        run = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if run.get("schema") != "oh-matrix/1":
        raise InputError(f"{path}: schema {run.get('schema')!r} is not oh-matrix/1")
    return dict(run)
