"""Run history: one JSON line per run in `<reports>/history.jsonl`, and what changed.

A nightly job wants to know what changed since last night on the same host: a cell that
passed last time and fails now is a **regression**, the reverse a **fix**. Runs are
compared per host (hostname + daemon version), since a verdict belongs to its host.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from harness.errors import OutputError

GOOD = {"pass"}
BAD = {"fail", "error"}


def host_key(run: dict[str, Any]) -> str:
    host = run.get("host") or {}
    return f"{host.get('hostname') or socket.gethostname()}/{host.get('server_version', '?')}"


def entry(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"], "finished_at": run["finished_at"], "host": host_key(run),
        "matrix": run.get("matrix"),
        "cells": {c["id"]: {"verdict": c["connect"]["verdict"], "cause": c["connect"].get("cause"),
                            "version": c.get("resolved_version")} for c in run["cells"]},
    }


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a torn last line from a crash: skip it, keep the rest
            continue
    return out


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    regressions, fixes = [], []
    if previous:
        for cid, now in current["cells"].items():
            before = previous["cells"].get(cid)
            if not before:
                continue
            change = {"cell": cid, "before": before, "now": now, "since": previous["run_id"]}
            if before["verdict"] in GOOD and now["verdict"] in BAD:
                regressions.append(change)
            elif before["verdict"] in BAD and now["verdict"] in GOOD:
                fixes.append(change)
    return {"regressions": regressions, "fixes": fixes}


def record(run: dict[str, Any], path: Path) -> dict[str, list[dict[str, Any]]]:
    """Compare with the last run on the same host, then append this run (one write of one
    line, so concurrent runs interleave whole lines)."""
    current = entry(run)
    same_host = [e for e in load(path) if e.get("host") == current["host"]]
    result = changes(same_host[-1] if same_host else None, current)
    path.parent.mkdir(parents=True, exist_ok=True)
    # After a crash mid-line, start on a fresh line so this run is not lost with it.
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (("\n" if torn else "") + json.dumps(current) + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:  # a torn line is skipped by load() and healed by the next run
        raise OutputError(f"{path}: cannot append this run: {e.strerror or e}") from None
    return result


SYMBOL = {"pass": "P", "fail": "F", "error": "E", "skip": "-"}


def trends(entries: list[dict[str, Any]], host: str, last: int = 10) -> dict[str, str]:
    """Each cell's verdicts over the last runs on `host`, oldest first: `P P F P`."""
    recent = [e for e in entries if e.get("host") == host][-last:]
    ids = dict.fromkeys(cid for e in recent for cid in e["cells"])
    return {cid: " ".join(SYMBOL.get((e["cells"].get(cid) or {}).get("verdict", ""), ".") for e in recent)
            for cid in ids}


def trend_table(entries: list[dict[str, Any]], last: int = 10) -> str:
    """Per-cell verdicts over the last runs, oldest first: `0.62-bridge  F F P`."""
    recent = entries[-last:]
    ids = list(dict.fromkeys(cid for e in recent for cid in e["cells"]))
    if not ids:
        return "(no runs recorded)"
    width = max(len(i) for i in ids)
    lines = [f"{'cell'.ljust(width)}  " + " ".join(e["run_id"][:2] for e in recent)]
    for cid in ids:
        marks = [SYMBOL.get((e["cells"].get(cid) or {}).get("verdict", ""), ".").ljust(2) for e in recent]
        lines.append(f"{cid.ljust(width)}  " + " ".join(marks).rstrip())
    return "\n".join(lines)
