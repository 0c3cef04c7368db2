"""The machine's share of a cell's boot, as one context manager (`boot`): the host-port
lock a runtime on fixed host ports needs, an admission slot (admission.py), and the meter
that sets the boot against the release's own clock and the machine's load, and teaches
admission what a passing boot needs here.

The lock outlives the boot: it is handed to the cell's own ExitStack, so it goes only
once the runtime holding those ports is gone (the stack removes the runtimes first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from harness import endpoint, modes
from harness.cells import admission
from harness.cells.facts import cpu_and_memory, started_at
from harness.cells.launch import AppLauncher
from harness.host import hostload
from harness.model import Verdict


@dataclass
class BootClock:
    """What the cell tells the meter while it boots."""

    start: hostload.CpuSample
    answered_at: float | None = None  # epoch seconds: the runtime first answered


def host_port_lock(launcher: AppLauncher) -> contextlib.AbstractContextManager[object]:
    """Cells that bind fixed host ports (the V1 sandbox on the host network; a 1.0/1.1 app,
    whose sandbox calls it back at a port no setting moves) run one at a time on this
    machine, across xdist workers and concurrent runs alike: a lock per port, in order."""
    gen, result = launcher.gen, launcher.result
    ports = sorted(set(modes.fixed_host_ports(launcher.mode, gen)))
    if not ports:
        return contextlib.nullcontext()
    from filelock import FileLock

    from harness.paths import cache_root

    note = f"serialized: the cell binds fixed host ports ({', '.join(map(str, ports))})"
    if app := launcher.mode.fixed_app_port(gen):
        note += (f"; the app's is {app}, because this release's sandbox calls the app back at "
                 f"host.docker.internal:{gen.callback_port_default} and no setting moves it")
    if note not in result.notes:
        result.notes.append(note)
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    held = contextlib.ExitStack()
    for port in ports:  # one order for every cell: no two wait on each other
        held.enter_context(FileLock(str(locks / f"host-port-{port}.lock")))
    return held


@contextlib.contextmanager
def boot(launcher: AppLauncher, holder: contextlib.ExitStack) -> Iterator[BootClock]:
    """The boot (app, then runtime, up to the connect verdict) with the machine's share of
    it; `holder` keeps the host-port lock until what the cell started is gone."""
    plan, result = launcher.plan, launcher.result
    holder.enter_context(host_port_lock(launcher))
    waiting = "waiting for every boot slot (this boot runs alone)" if plan.alone else \
        f"waiting for a boot slot ({plan.boot_slots} on this machine)"
    held = contextlib.nullcontext(0.0) if plan.slots_held else \
        admission.slot(plan.boot_slots, plan.alone, lambda: launcher.phase(waiting))
    with held as waited:
        result.boot.slot_wait, result.boot.slots, result.boot.alone = waited, plan.boot_slots, plan.alone
        clock = BootClock(hostload.sample())
        try:
            yield clock
        finally:
            measure(launcher, clock)


def measure(launcher: AppLauncher, clock: BootClock) -> None:
    """The boot against the release's clock and the machine's load; a passing boot's CPU and
    memory teach admission control what a boot needs here."""
    result, gen = launcher.result, launcher.gen
    b, runtime = result.boot, launcher.container(launcher.runtime_name)
    b.grace = gen.grace(launcher.app_env)
    if runtime is not None and clock.answered_at is not None and (started := started_at(runtime)):
        b.runtime_seconds = round(clock.answered_at - started, 1)
    end = hostload.sample()
    app_cpu, app_memory = cpu_and_memory(launcher.container(launcher.name))
    runtime_cpu, runtime_memory = cpu_and_memory(runtime)
    wall = max(end.at - clock.start.at, 1e-6)
    own = (app_cpu + runtime_cpu) / wall  # the daemon's own account: right on any daemon
    b.cpu_cores = round(own, 2)
    b.remote = endpoint.remote()
    if not b.remote:  # /proc is this machine's, not a remote daemon's host
        busy, steal = hostload.busy_cores(clock.start, end)
        b.host_busy_cores = round(busy, 2)
        b.other_cores, b.steal_percent = round(max(busy - own, 0.0), 2), round(steal, 1)
        b.load = hostload.load()
    at_api = launcher.app_cpu_at_api
    app_phase = at_api / max(result.app_seconds or 0.0, 1.0)
    connect_phase = ((app_cpu - at_api) + runtime_cpu) / max(result.connect.seconds or 0.0, 1.0)
    if result.connect.verdict == Verdict.PASS and result.app_seconds and result.connect.seconds:
        admission.record(gen.name, max(app_phase, connect_phase), app_memory + runtime_memory)
