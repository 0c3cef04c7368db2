"""Signals that stop a run from outside take the same path as Ctrl-C, so every cell's
teardown and the run's final steps still run: SIGTERM (CI cancelling a job, `kill`) and
SIGHUP (the terminal or session that started the run went away, as when a shell's
background job is ended with it: by default it killed the run with its containers up).
Light on purpose: the plugin installs them in every process of a matrix run."""

from __future__ import annotations

import os
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_hung_up = False  # a SIGHUP arrived: the terminal, or the pipe of whoever started the run, is gone


def hung_up() -> bool:
    """A SIGHUP arrived in this process."""
    return _hung_up


def detach_output() -> None:
    """Standard output and error to /dev/null, as under nohup: after a hangup, what the
    teardown and the final steps print would raise BrokenPipeError and stop the run before
    its results are written."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    if signum == signal.SIGHUP:
        global _hung_up
        _hung_up = True
        detach_output()
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def stop_as_interrupt() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in this process from now on."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _terminate_as_interrupt)
