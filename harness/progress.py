"""A run you can watch: one line per phase of each cell as it happens (waiting for a boot
slot, the app up, the runtime created and running, connected or failing, each task started
and done), between the verdict lines.

A cell runs on an xdist worker, whose output pytest never shows, so each process appends
its lines to the run's `progress.log` (in the report folder; one write per line, with
O_APPEND: lines of several workers never mix) and the controller follows the file and
prints each line as it lands (`Follower`). The file stays with the report: the same lines,
with the time of each, for whoever reads the run afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable
from pathlib import Path

from harness.secrets import scrub

NAME = "progress.log"
_fd: int | None = None
_pid: int | None = None


def open_log(out: str | Path) -> None:
    """Where this process's phase lines go (the run's report folder)."""
    global _fd, _pid
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if _fd is not None and _pid == os.getpid():
        os.close(_fd)
    _fd, _pid = os.open(folder / NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), os.getpid()


def phase(cell: str, text: str) -> None:
    """One phase of `cell`, as it happens. Never fails the cell: a full disk loses the line."""
    if _fd is None or _pid != os.getpid():
        return
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    line = f"{stamp} {cell:<32} {' '.join(scrub(text).split())}"[:400] + "\n"  # a task's detail may echo a secret
    with contextlib.suppress(OSError):
        os.write(_fd, line.encode())


class Follower(threading.Thread):
    """The controller's side: follows progress.log and hands each new line to `show`."""

    def __init__(self, out: str | Path, show: Callable[[str], None], every: float = 0.5) -> None:
        super().__init__(name="oh-matrix-progress", daemon=True)
        self.path, self.show, self.every = Path(out) / NAME, show, every
        self.offset = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.drain()

    def drain(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for its end
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            self.show(line)

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=5)
        self.drain()  # what landed after the last look
