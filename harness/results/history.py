"""Run history: one JSON line per run in `<reports>/history.jsonl`, and what changed.

A nightly job wants to know what changed since last night on the same host: a cell that
passed last time and fails now is a **regression**, the reverse a **fix**. Runs are
compared per host, since a verdict belongs to its host: the label the user gave it
(`OH_MATRIX_HOST`) when set, else its hostname and daemon version.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import InputError, OutputError
from harness.model import Change, Changes, HistoryCell, HistoryEntry, Host, Night, Run, Verdict

GOOD = {Verdict.PASS}
BAD = {Verdict.FAIL, Verdict.ERROR}


def host_key(host: Host) -> str:
    """Which runs are "the same host". A label is the user's word that it is, whatever the
    hostname (a new one each night on GitHub-hosted runners) and the Docker version (an
    upgrade that breaks a cell is a regression on that host, not a new host). A rootless or
    remote daemon is another host beside the machine's own: its cells' paths all differ, so a
    verdict there is no regression of the rootful one's (seen: a rootless grid called four
    cells regressions of the rootful run before it)."""
    if host.label:
        return host.label + host.daemon_kind
    return f"{host.hostname or socket.gethostname()}/{host.server_version or '?'}{host.daemon_kind}"


def entry(run: Run) -> HistoryEntry:
    return HistoryEntry(run_id=run.run_id, finished_at=run.finished_at, host=host_key(run.host), matrix=run.matrix,
                        cells={c.id: HistoryCell(verdict=c.connect.verdict, cause=c.connect.cause,
                                                 version=c.resolved_version, seconds=c.connect.seconds,
                                                 grace=c.boot.grace) for c in run.cells},
                        oh_matrix_version=run.oh_matrix_version, oh_matrix_commit=run.oh_matrix_commit)


def load(path: Path) -> list[HistoryEntry]:
    return read(path)[0]


def read(path: Path) -> tuple[list[HistoryEntry], list[str]]:
    """The runs recorded in `path`, and one line for each line that is not a run record (a
    torn last line from a crash, a hand edit, bytes that are not UTF-8): the caller says so,
    never skips it silently. A file that cannot be read at all is an OutputError: it is the
    run's own record (the inputs step and `oh-matrix history` check it first: `problem`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as e:
        raise OutputError(f"{path}: cannot read the history: {e.strerror or e}") from None
    out, bad = [], []
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            out.append(HistoryEntry.model_validate_json(raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            bad.append(f"{path}:{n}: not UTF-8 text (byte {e.start})")
        except ValidationError as e:
            bad.append(f"{path}:{n}: not a run record ({e.error_count()} error(s), first: {e.errors()[0]['msg']})")
    return out, bad


def problem(path: Path, append: bool = False) -> str | None:
    """Why a history file that exists cannot be read (or, for a run, appended to: opened for
    appending, which writes nothing), or None (a missing one is fine: the first run makes it)."""
    if not path.exists():
        return None
    if not path.is_file():
        return f"{path}: not a file"
    try:
        with path.open("ab" if append else "rb"):
            pass
    except OSError as e:
        return f"{path}: cannot {'append to' if append else 'read'}: {e.strerror or e}"
    return None


def changes(previous: HistoryEntry | None, current: HistoryEntry) -> Changes:
    out = Changes()
    if previous:
        for cid, now in current.cells.items():
            before = previous.cells.get(cid)
            if not before:
                continue
            change = Change(cell=cid, before=before, now=now, since=previous.run_id)
            if before.verdict in GOOD and now.verdict in BAD:
                out.regressions.append(change)
            elif before.verdict in BAD and now.verdict in GOOD:
                out.fixes.append(change)
    return out


def record(run: Run, path: Path) -> Changes:
    """Compare with the last run on the same host, then append this run (one write of one
    line, so concurrent runs interleave whole lines)."""
    current = entry(run)
    entries, unreadable = read(path)
    same_host = [e for e in entries if e.host == current.host]
    result = changes(same_host[-1] if same_host else None, current)
    result.unreadable = unreadable
    path.parent.mkdir(parents=True, exist_ok=True)
    # After a crash mid-line, start on a fresh line so this run is not lost with it.
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (("\n" if torn else "") + current.model_dump_json() + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:  # a torn line is skipped by load() and healed by the next run
        raise OutputError(f"{path}: cannot append this run: {e.strerror or e}") from None
    return result


SYMBOL = {"pass": "P", "fail": "F", "error": "E", "skip": "-"}
NIGHTS = 14  # runs a cell's charts in the report go back


def _mark(e: HistoryEntry, cid: str) -> str:
    cell = e.cells.get(cid)
    return SYMBOL.get(cell.verdict, ".") if cell else "."


def trends(entries: list[HistoryEntry], host: str, last: int = 10) -> dict[str, str]:
    """Each cell's verdicts over the last runs on `host`, oldest first: `P P F P`."""
    recent = [e for e in entries if e.host == host][-last:]
    ids = dict.fromkeys(cid for e in recent for cid in e.cells)
    return {cid: " ".join(_mark(e, cid) for e in recent) for cid in ids}


def nights(entries: list[HistoryEntry], host: str, last: int = NIGHTS) -> dict[str, list[Night]]:
    """Each cell's runs on `host` among the last `last` runs there, oldest first: what the
    report charts (verdict by night, connect seconds against the release's grace)."""
    out: dict[str, list[Night]] = {}
    for e in [e for e in entries if e.host == host][-last:]:
        for cid, c in e.cells.items():
            out.setdefault(cid, []).append(Night(run_id=e.run_id, finished_at=e.finished_at, verdict=c.verdict,
                                                 cause=c.cause, seconds=c.seconds, grace=c.grace, version=c.version))
    return out


def hosts(entries: list[HistoryEntry]) -> list[str]:
    return list(dict.fromkeys(e.host for e in entries))


def of_host(entries: list[HistoryEntry], host: str | None) -> list[HistoryEntry]:
    """The runs of one host (`--host`), or all of them; a host with none is an input error
    that names the hosts there are."""
    if host is None:
        return entries
    mine = [e for e in entries if e.host == host]
    if not mine:
        raise InputError(f"--host {host}: no runs recorded for it (hosts: {', '.join(hosts(entries))})")
    return mine


def stamp(finished_at: str) -> tuple[str, str]:
    """A column's head, in two lines: `12-07` and `03:10` (the run's end, as recorded)."""
    try:
        when = dt.datetime.fromisoformat(finished_at)
    except ValueError:
        return finished_at[:5], ""
    return when.strftime("%m-%d"), when.strftime("%H:%M")


def trend_table(entries: list[HistoryEntry], last: int = 10) -> str:
    """Per-cell verdicts over the last runs, oldest first, one table per host, each column
    headed by the date and time the run ended:

        host h1/27.0: 3 runs, 12-05 to 12-07
        cell         12-05  12-06  12-07
                     03:10  03:11  03:09
        0.62-bridge  F      F      F
    """
    if not entries:
        return "(no runs recorded)"
    return "\n\n".join(_host_table(h, [e for e in entries if e.host == h][-last:]) for h in hosts(entries))


def _host_table(host: str, recent: list[HistoryEntry]) -> str:
    ids = list(dict.fromkeys(cid for e in recent for cid in e.cells))
    width = max([len(i) for i in ids] + [len("cell")])
    heads = [stamp(e.finished_at) for e in recent]
    lines = [f"host {host}: {len(recent)} run(s), {heads[0][0]} to {heads[-1][0]}",
             f"{'cell'.ljust(width)}  " + "  ".join(d.ljust(5) for d, _ in heads).rstrip(),
             f"{''.ljust(width)}  " + "  ".join(t.ljust(5) for _, t in heads).rstrip()]
    for cid in ids:
        lines.append(f"{cid.ljust(width)}  " + "  ".join(_mark(e, cid).ljust(5) for e in recent).rstrip())
    return "\n".join(lines)


def as_json(entries: list[HistoryEntry], unreadable: list[str], last: int = 10) -> dict[str, Any]:
    """What `oh-matrix history --json` prints: the runs each table shows, per host, oldest
    first, and the lines that could not be read."""
    return {"hosts": {h: [e.model_dump(mode="json") for e in entries if e.host == h][-last:] for h in hosts(entries)},
            "unreadable": unreadable}
