"""A full disk while results and reports are written: the old files stay whole, no temp
file is left, and the user gets one line, not a traceback (a real tmpfs of a few KiB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import OutputError
from harness.model import Run
from harness.output import write_json

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev machine run as root)")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_results_json_is_never_truncated(tiny_disk: Path) -> None:
    target = tiny_disk / "results.json"
    write_json(target, {"run": "before"})
    with pytest.raises(OutputError, match=r"results.json: cannot write: No space left on device"):
        write_json(target, {"run": "after", "padding": "x" * 200_000})
    assert json.loads(target.read_text()) == {"run": "before"}
    assert [p.name for p in tiny_disk.iterdir()] == ["results.json"]  # no temp file left


@pytest.mark.parametrize("room", [2048, 30_000], ids=["nothing-fits", "only-the-picture-does-not-fit"])
def test_report_on_a_full_disk_is_one_line_and_keeps_results(tiny_disk: Path, room: int,
                                                              synthetic_run: Callable[..., Run]) -> None:
    run = synthetic_run("r1", "vm", "20.10", {"0.62-bridge": "fail", "0.62-host-gateway": "pass"})
    (tiny_disk / "results.json").write_text(run.to_json())
    filler = tiny_disk / "filler"
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - room))
    before = (tiny_disk / "results.json").read_bytes()
    r = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(tiny_disk)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "No space left on device" in r.stderr
    assert (tiny_disk / "results.json").read_bytes() == before
    assert not [p.name for p in tiny_disk.iterdir() if p.name.endswith(".tmp")]
    png = tiny_disk / "report.png"
    assert not png.exists() or png.read_bytes().endswith(b"IEND\xaeB`\x82")  # never a cut-short picture
