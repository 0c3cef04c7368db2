"""Admission control for OpenHands' own clocks.

While a cell boots (its app, then its runtime, up to the connect verdict), OpenHands runs
graces and timeouts of its own: V1 gives its sandbox 15 s to answer /health before it calls
it dead. The harness's parallelism must not be what runs those clocks out, so a boot takes a
slot, and the machine has as many slots as boots it can carry at once: its cores divided by
what a boot was *measured* to use here (the busiest phase of recent boots, in cores, from the
daemon's own CPU accounting of the cell's containers), bounded by memory the same way. Until
a boot was measured on this machine there is one slot. Slots are lock files, so xdist workers
and concurrent runs share them. A cell may take every slot: it then boots with the machine to
itself (runner.py does that before believing a grace that ran out).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from harness import knobs
from harness.endpoint import remote
from harness.host import hostload
from harness.paths import cache_root

RESERVE = 0.9  # of the cores and memory: the rest stays for the harness and the cells' tasks
KEEP = 20  # measurements kept per generation
MAX_SLOTS = 16
POLL = 0.5


def _demand_file() -> Path:
    return cache_root() / "boot-demand.json"


def _read() -> dict[str, dict[str, list[float]]]:
    try:
        data = json.loads(_demand_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(generation: str, cores: float, memory: float) -> None:
    """One passing cell's boot: the cores its busiest phase used, the memory it peaked at."""
    with FileLock(str(_demand_file()) + ".lock"):
        data = _read()
        mine = data.setdefault(generation, {"cores": [], "memory": []})
        mine["cores"] = [*mine.get("cores", []), round(cores, 3)][-KEEP:]
        mine["memory"] = [*mine.get("memory", []), float(memory)][-KEEP:]
        _demand_file().write_text(json.dumps(data, indent=1) + "\n")


def slots() -> tuple[int, str]:
    """How many boots this machine admits at once, and why (`OH_MATRIX_BOOT_SLOTS` overrides
    the measurement: for a comparison, or a host whose owner knows better)."""
    if (forced := knobs.whole_number("OH_MATRIX_BOOT_SLOTS")) is not None:
        return min(forced, MAX_SLOTS), f"set by OH_MATRIX_BOOT_SLOTS={forced}"
    data = _read()
    demand = max((statistics.median(g["cores"]) for g in data.values() if g.get("cores")), default=None)
    memory = max((max(g["memory"]) for g in data.values() if g.get("memory")), default=None)
    cores, available, where = _machine()
    if demand is None:
        return 1, f"no boot measured on this machine yet: one at a time ({cores} cores{where})"
    by_cpu = max(1, math.floor(cores * RESERVE / max(demand, 0.1)))
    by_memory = max(1, math.floor(available * RESERVE / memory)) if memory else by_cpu
    n = min(by_cpu, by_memory, MAX_SLOTS)
    return n, (f"{cores} cores{where} x {RESERVE} / {demand:.2f} cores per boot (median of the busiest phase of "
               f"recent boots here)" + (f", {memory / 1e9:.1f} GB per boot" if memory else ""))


def _machine() -> tuple[int, int, str]:
    """(cores, bytes of memory, in words whose) of the machine the cells boot on: this one's
    affinity and MemAvailable, or a remote daemon's host as the daemon reports it (its cores and
    total memory: what is free there is not read from here)."""
    from harness.host import docker_host

    if not remote():
        return hostload.cores(), hostload.memory_available(), ""
    info = docker_host.client().info()
    return int(info.get("NCPU") or 1), int(info.get("MemTotal") or 0), " of the remote daemon's host (its total memory)"


def _lock(i: int) -> FileLock:
    folder = cache_root() / "locks"
    folder.mkdir(exist_ok=True)
    return FileLock(str(folder / f"boot-slot-{i}.lock"))


@contextmanager
def slot(n: int, alone: bool = False, waiting: Callable[[], None] | None = None) -> Iterator[float]:
    """Hold one of `n` boot slots (every one of them when `alone`); yields the seconds waited.
    `waiting` is called once if the slot is not free at once (a phase line for the user)."""
    t0 = time.monotonic()
    with ExitStack() as held:
        if alone:
            if waiting is not None:
                waiting()
            for i in range(n):  # in order: two cells asking to be alone cannot deadlock
                held.enter_context(_lock(i))
        else:
            locks = [_lock(i) for i in range(n)]
            while True:
                got = None
                for lock in locks:
                    try:
                        lock.acquire(timeout=0)
                        got = lock
                        break
                    except Timeout:
                        continue
                if got is not None:
                    held.callback(got.release)
                    break
                if waiting is not None:
                    waiting()
                    waiting = None
                time.sleep(POLL)
        yield round(time.monotonic() - t0, 1)
