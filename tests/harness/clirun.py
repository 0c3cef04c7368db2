"""Running `oh-matrix` (or anything that starts containers) as a child process in tests.

subprocess.run(timeout=...) kills a child that overruns with SIGKILL, which leaves its
containers up until the next run's sweep; here an overrun child gets SIGTERM first (the
harness's interrupt path: its teardown and final steps run), then SIGKILL if it is still
there a minute later."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

GRACE = 60  # seconds between SIGTERM and SIGKILL for an overrun child


def run(cmd: Sequence[str], *, cwd: str | Path, timeout: float,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)}: still running after {timeout} s (stopped)\n"
                             f"{out[-2000:]}\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def matrix(*modes: str, tasks: Sequence[str] = ("create-file",), tags: Sequence[str] = ("0.62", "1.11")) -> str:
    """A matrix file's text for a child run: these releases in these built-in modes, these tasks."""
    listed = ", ".join(f'"{t}"' for t in tasks)
    return (f"[run]\ntasks = [{listed}]\n" + "".join(f'[[targets]]\ntag = "{t}"\n' for t in tags)
            + "".join(f"[modes.{m}]\n" for m in modes))
