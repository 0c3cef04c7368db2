"""Phase lines: every process of a run appends to one progress.log, the controller follows
it and shows whole lines only, each once, in the order they were written."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from harness import progress


def _worker(out: str, cell: str, n: int) -> None:
    progress.open_log(out)
    for i in range(n):
        progress.phase(cell, f"phase {i}   with  spaces\nand a newline")


def test_lines_of_several_workers_reach_the_follower_whole_and_once(tmp_path: Path) -> None:
    shown: list[str] = []
    follower = progress.Follower(tmp_path, shown.append, every=0.05)
    follower.start()
    ctx = multiprocessing.get_context("spawn")  # as xdist's workers: processes of their own
    workers = [ctx.Process(target=_worker, args=(str(tmp_path), f"0.62-mode{w}", 200)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    follower.stop()  # reads what landed after its last look
    assert len(shown) == 600
    for w in range(3):
        mine = [line for line in shown if f" 0.62-mode{w} " in line]
        assert [line.split("phase ")[1].split()[0] for line in mine] == [str(i) for i in range(200)]
        assert all(line.endswith("with spaces and a newline") for line in mine)  # one line each
    assert (tmp_path / progress.NAME).read_text().count("\n") == 600  # the file stays with the report


def test_a_process_that_did_not_open_the_log_writes_nothing(tmp_path: Path) -> None:
    progress.phase("x", "nowhere to go")  # no log opened in this process: silently nothing
    assert not (tmp_path / progress.NAME).exists()
