"""Known fixes, as data tied to the causes they address, and the search that tries them.

A remedy is a change of the app container's environment, and for some a change of mode
(the documented host-network fix is `--network host` plus two variables), so trying one is
the same real cell run again with that env added, in that mode; whether it turns the cell
green is what the rerun shows, never what this table claims. Which remedies a cell may try
is its generation's list (harness/generations.py); each remedy names the causes and the
directions it addresses. docs/remedies.md says where each comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from harness import generations
from harness.model import Cause, CellResult, Direction, RemedyTry


@dataclass(frozen=True)
class Context:
    gateway: str | None  # the default bridge's gateway (what host-gateway maps to)
    runtime_seconds: float | None = None  # how long the failed cell's runtime took to answer


@dataclass(frozen=True)
class Remedy:
    name: str
    causes: tuple[Cause, ...]
    env: Callable[[Context], dict[str, str] | None]  # None: not applicable on this host
    why: str
    mode: str | None = None  # rerun the cell in this mode (None: its own)
    directions: tuple[Direction | None, ...] = (Direction.FORWARD, None)  # the callback needs its own fixes


def _gateway(key: str, fmt: str = "{gw}") -> Callable[[Context], dict[str, str] | None]:
    return lambda ctx: {key: fmt.format(gw=ctx.gateway)} if ctx.gateway else None


def _no_proxy(ctx: Context) -> dict[str, str]:
    hosts = ",".join(h for h in ("host.docker.internal", "localhost", "127.0.0.1", ctx.gateway) if h)
    return {"NO_PROXY": hosts, "no_proxy": hosts}


def _grace(ctx: Context) -> dict[str, str]:
    """Three times what the runtime took here, at least a minute."""
    return {"SANDBOX_STARTUP_GRACE_SECONDS": str(max(60, math.ceil(3 * (ctx.runtime_seconds or 0))))}


DNS, TIMEOUT, REFUSED = Cause.DNS_UNRESOLVED, Cause.CONNECT_TIMEOUT, Cause.CONNECTION_REFUSED

REMEDIES: dict[str, Remedy] = {r.name: r for r in (
    Remedy("docker-host-addr", (DNS, TIMEOUT),
           _gateway("DOCKER_HOST_ADDR"),
           "V0 polls http://$DOCKER_HOST_ADDR:PORT instead of host.docker.internal (docker_runtime.py L123-129)"),
    Remedy("host-network-trio", (DNS, TIMEOUT, REFUSED),
           lambda ctx: {"SANDBOX_USE_HOST_NETWORK": "true", "DOCKER_HOST_ADDR": "127.0.0.1"},
           "the documented host-network setup: app and runtime on the host network, runtime "
           "polled on 127.0.0.1, so no packet crosses a bridge or the host's INPUT chain",
           mode="host"),
    Remedy("own-network", (TIMEOUT,), lambda ctx: {},
           "the app on a user-defined network: its SYNs reach the published port through that "
           "network's own bridge, not docker0, which host firewalls (ufw, firewalld) tend to drop",
           mode="custom-network"),
    Remedy("bind-all-addresses", (REFUSED,),
           lambda ctx: {"SANDBOX_RUNTIME_BINDING_ADDRESS": "0.0.0.0"},
           "publish the runtime's ports on every address, not loopback only"),
    Remedy("no-proxy", (Cause.PROXY,), _no_proxy,
           "keep the runtime host out of the app's HTTP(S)_PROXY (httpx honours NO_PROXY)"),
    Remedy("v1-url-pattern", (DNS, TIMEOUT),
           _gateway("SANDBOX_CONTAINER_URL_PATTERN", "http://{gw}:{{port}}"),
           "reach the sandbox at the bridge gateway instead of host.docker.internal"),
    Remedy("v1-startup-grace", (Cause.STARTUP_GRACE,), _grace,
           "give the sandbox longer than the app's default 15 s to answer /health on a host this slow"),
)}


def unknown_names() -> list[str]:
    """Remedy names a generation lists that this table does not define (a test keeps it empty)."""
    return [f"{g.name}: {n}" for g in generations.GENERATIONS.values() for n in g.remedies if n not in REMEDIES]


def applicable(result: CellResult, ctx: Context) -> list[tuple[Remedy, dict[str, str]]]:
    out = []
    for name in generations.get(result.api).remedies:
        r = REMEDIES[name]
        if result.connect.cause not in r.causes:
            continue
        if result.connect.direction not in r.directions:
            continue
        env = r.env(ctx)
        if env is None or (r.mode == result.mode and not env):  # not here, or nothing would change
            continue
        out.append((r, env))
    return out


def search(result: CellResult, ctx: Context,
           rerun: Callable[[dict[str, str], str | None], CellResult]) -> list[RemedyTry]:
    """Rerun a failed cell once per applicable remedy (`rerun(env, mode)`, mode None: the
    cell's own); record what each really did and the command that did it."""
    tried = []
    for remedy, env in applicable(result, ctx):
        mode = remedy.mode if remedy.mode not in (None, result.mode) else None
        again = rerun(env, mode)
        tried.append(RemedyTry(name=remedy.name, env=env, mode=mode, why=remedy.why,
                               verdict=again.connect.verdict, cause=again.connect.cause,
                               seconds=again.connect.seconds, runtime_url=again.connect.runtime_url,
                               docker_run=again.docker_run))
    return tried
