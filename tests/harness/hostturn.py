"""The host's turn: release tests run two at a time (`nox -s release`: two xdist workers), and
a test that changes this host or is about its load takes the host to itself.

Most release tests only run cells: their boots already take turns through admission
(harness/cells/admission.py, boot slots shared by every process), and the rest of a cell (its
tasks, its teardown, a CLI run's start-up, an image copied to a second daemon) overlaps the
other worker's boots. A few would make the other worker's cells fail for them, or be judged
by the other worker's load: a firewall rule on docker0, a hosts line, CPU burners, a startup
grace measured on this machine. Those are marked `alone` and hold the host exclusively; every
other release test, and every batch of shared cells (tests/harness/shared.py), holds it
shared. A test waiting to be alone goes before any test that asks for a shared turn after it
(a second lock, the gate, keeps new shared turns out), so it is never starved.

The locks are files in the harness's cache folder (as the boot slots are), so every process of
this machine that runs release tests takes the same turns. A process that holds a turn already
(a batch of shared cells inside a test) does not take it again."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from harness.paths import cache_root

_held = threading.local()


def _folder() -> Path:
    folder = cache_root() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def turn(alone: bool) -> Iterator[None]:
    """Hold the host shared, or to this test alone (`alone`), until the block ends."""
    if getattr(_held, "depth", 0):  # this thread holds a turn already
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    gate, host = _folder() / "release-host-gate.lock", _folder() / "release-host.lock"
    with contextlib.ExitStack() as stack:
        if alone:
            stack.enter_context(_flock(gate, fcntl.LOCK_EX))  # no shared turn starts while this waits or runs
            stack.enter_context(_flock(host, fcntl.LOCK_EX))
        else:
            with _flock(gate, fcntl.LOCK_EX):  # behind a test waiting to be alone
                stack.enter_context(_flock(host, fcntl.LOCK_SH))
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


@contextlib.contextmanager
def flocked(name: str) -> Iterator[None]:
    """An exclusive lock file of that name beside the host's turn, for the length of the block."""
    with _flock(_folder() / name, fcntl.LOCK_EX):
        yield
