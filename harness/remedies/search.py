"""The search: which of the table's remedies a failed cell may try (`applicable`), each tried
by a real rerun of the cell with its change (`search`), and `attempt`, the one call the
runner makes for a failed cell: its facts (Context.of), the flags, the search, and for a
user's deployment each proven fix as a change to their own file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness import generations, modes
from harness.context import RunContext
from harness.matrix import Cell
from harness.model import Cause, CellResult, RemedyTry, Verdict
from harness.remedies.context import Context
from harness.remedies.table import REMEDIES, Remedy


@dataclass(frozen=True)
class Change:
    """What one rerun changes: env added; the mode it moves to (a built-in cell), or for a
    user's deployment its own network (`host`) and the hosts its container gains, since a
    deployment is fixed in its own file rather than replaced by a built-in mode."""

    env: dict[str, str]
    mode: str | None = None
    network_mode: str | None = None
    extra_hosts: dict[str, str] = field(default_factory=dict)
    also_publish: str | None = None  # an address the app's port is published on as well
    volumes: tuple[str, ...] = ()  # mounts a deployment's container gains
    republish: int | None = None  # the container port a deployment's published app port goes to


def applicable(result: CellResult, ctx: Context) -> list[tuple[Remedy, Change]]:
    ctx = replace(ctx, api=result.api, version=result.resolved_version)
    out = []
    for name in generations.get(result.api).remedies:
        r = REMEDIES[name]
        if result.connect.cause not in r.causes:
            continue
        if result.connect.direction not in r.directions:
            continue
        change = _change(r, result, ctx)
        if change is None:  # not here, or nothing would change
            continue
        out.append((r, change))
    return out


def _change(r: Remedy, result: CellResult, ctx: Context) -> Change | None:
    if r.host_change and ctx.remote:
        return None
    env = r.env(ctx)
    hosts = r.hosts(ctx) if r.hosts else {}
    publish = r.publish(ctx) if r.publish else ""
    volumes = r.volumes(ctx) if r.volumes else ()
    republish = r.republish(ctx) if r.republish else 0
    if env is None or hosts is None or publish is None or volumes is None or republish is None:
        return None
    mode = r.mode if r.mode not in (None, result.mode) else None
    network_mode = None
    if ctx.deployment and mode is not None:
        # A deployment is fixed in its own file, not replaced by a built-in mode: it takes the
        # mode's host network itself (its command must leave the port to the harness), no other.
        if not modes.get(mode).shares_host_ports:
            return None
        if not ctx.on_host_network and ctx.own_command:
            return None
        mode, network_mode = None, None if ctx.on_host_network else "host"
    if not (env or hosts or publish or volumes or republish or r.host_change or mode or network_mode):
        return None
    return Change(env, mode, network_mode, hosts, publish or None, volumes, republish or None)


Rerun = Callable[[Change, bool], CellResult]


def _decision(again: CellResult) -> str | None:
    """The rerun's own reason when it did not pass: the harness's decision, first in its evidence."""
    if again.connect.verdict == Verdict.PASS:
        return None
    return again.connect.evidence[0].text if again.connect.evidence else again.connect.reason


def search(result: CellResult, ctx: Context, rerun: Rerun,
           machine: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
           only: frozenset[str] = frozenset()) -> list[RemedyTry]:
    """Rerun a failed cell once per applicable remedy (`rerun(change, alone)`; alone: with the
    machine to itself, as a host change needs); record what each really did and the command
    that did it. `machine` holds every boot slot: a host change is made only inside it, so no
    other cell boots on the changed machine (its verdict would be the change's, not its own)."""
    tried = []
    for remedy, todo in applicable(result, ctx):
        if only and remedy.name not in only:  # --remedy: the user asked for these alone
            continue
        changing = remedy.host_change(ctx) if remedy.host_change else contextlib.nullcontext("")
        holding = machine() if remedy.host_change and machine else contextlib.nullcontext()
        with holding, changing as change:
            again = rerun(todo, remedy.host_change is not None)
        tried.append(RemedyTry(name=remedy.name, env=todo.env, mode=todo.mode, why=remedy.why,
                               extra_hosts=todo.extra_hosts, network_mode=todo.network_mode,
                               also_publish=todo.also_publish, volumes=list(todo.volumes),
                               republish=todo.republish,
                               verdict=again.connect.verdict, cause=again.connect.cause,
                               direction=again.connect.direction, seconds=again.connect.seconds,
                               runtime_url=again.connect.runtime_url, docker_run=again.docker_run,
                               evidence=_decision(again),
                               host_change=change or None,
                               asks=1 if todo.network_mode else remedy.asks))
    return tried


def attempt(result: CellResult, cell: Cell, ctx: RunContext, rerun: Rerun,
            machine: Callable[[], contextlib.AbstractContextManager[object]]) -> list[RemedyTry]:
    """The remedies a failed cell tries, each by a real rerun: with --remedies (narrowed by
    --remedy), and the startup-grace knob whatever the flags say, since a grace that ran out
    with the machine to itself is a finding only useful with the setting that makes the cell
    work here. A passing cell, or one not asked to, tries none."""
    grace = result.connect.cause == Cause.STARTUP_GRACE
    if not (ctx.remedies or grace) or result.connect.verdict != Verdict.FAIL:
        return []
    only = frozenset(ctx.remedy_names) if ctx.remedies and not grace else frozenset()
    tried = search(result, Context.of(result, cell, ctx), rerun, machine, only)
    dep = cell.mode.deployment
    if dep is not None:  # what passed, as a change to the user's own file
        from harness.deployments.fixes import fix

        for r in tried:
            if r.verdict == Verdict.PASS and not r.host_change:
                r.fix = fix(dep, r.env, r.extra_hosts, r.network_mode, r.also_publish, r.volumes, r.republish)
    return tried
