"""This machine's CPU while a cell boots, from /proc: how busy it was, how much of that was
the cell's own containers, what the hypervisor took. A verdict that depends on the host's load
must say so (docs/words.md: startup-grace)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at: float  # monotonic seconds
    busy: float  # CPU seconds spent not idle, all cores, since boot
    steal: float
    total: float


def sample() -> CpuSample:
    """One reading of /proc/stat's first line (user nice system idle iowait irq softirq steal ...)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return CpuSample(time.monotonic(), (total - idle) / CLOCK_TICKS, steal / CLOCK_TICKS, total / CLOCK_TICKS)


def busy_cores(start: CpuSample, end: CpuSample) -> tuple[float, float]:
    """(cores busy on average, percent of CPU time stolen) between two samples."""
    wall = max(end.at - start.at, 1e-6)
    total = max(end.total - start.total, 1e-6)
    return (end.busy - start.busy) / wall, 100.0 * (end.steal - start.steal) / total


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cores() -> int:
    """The cores this process may use (its CPU affinity), not the machine's count."""
    return len(os.sched_getaffinity(0))


def memory_available() -> int:
    """Bytes the kernel says could be allocated without swapping (MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
