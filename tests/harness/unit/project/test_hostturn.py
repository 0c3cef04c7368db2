"""The host's turn the release tests take (tests/harness/hostturn.py): shared turns overlap, a
test alone waits for them and keeps new ones out until it is done, and a turn taken inside a
turn is the same turn. Real flock locks between real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import hostturn
import pytest

HERE = Path(__file__).resolve().parents[2]  # tests/harness: its helper modules


def hold(cache: Path, alone: bool, seconds: float, log: Path, name: str) -> subprocess.Popen[bytes]:
    """Another process that takes a turn, holds it for `seconds`, and logs when it got it and let it go."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        import hostturn
        with hostturn.turn(alone={alone}):
            with open({str(log)!r}, "a") as f:
                f.write(f"{name} in {{time.monotonic():.3f}}\\n")
            time.sleep({seconds})
            with open({str(log)!r}, "a") as f:
                f.write(f"{name} out {{time.monotonic():.3f}}\\n")
    """)
    return subprocess.Popen([sys.executable, "-c", code], env={"OH_MATRIX_CACHE": str(cache), "PATH": "/usr/bin"})


def events(log: Path) -> list[tuple[str, str, float]]:
    return [(n, what, float(t)) for n, what, t in (line.split() for line in log.read_text().splitlines())]


def test_shared_turns_overlap_and_alone_waits_for_them_then_keeps_new_ones_out(tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = hold(tmp_path, False, 1.5, log, "shared1")
    time.sleep(0.5)
    second = hold(tmp_path, False, 1.5, log, "shared2")  # overlaps the first
    time.sleep(0.5)
    alone = hold(tmp_path, True, 1.0, log, "alone")  # waits for both
    time.sleep(0.5)
    late = hold(tmp_path, False, 0.2, log, "late")  # asked after alone: goes after it
    for p in (first, second, alone, late):
        assert p.wait(timeout=30) == 0
    at = {(n, w): t for n, w, t in events(log)}
    assert at[("shared2", "in")] < at[("shared1", "out")]  # two shared turns at once
    assert at[("alone", "in")] >= max(at[("shared1", "out")], at[("shared2", "out")])
    assert at[("late", "in")] >= at[("alone", "out")]  # the gate kept it out: no starving


def test_a_turn_inside_a_turn_is_the_same_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    with hostturn.turn(alone=True), hostturn.turn(alone=False), hostturn.turn(alone=True):
        pass  # no deadlock on our own locks
    log = tmp_path / "log"
    other = hold(tmp_path, True, 0.1, log, "other")  # and everything was let go
    assert other.wait(timeout=10) == 0
