"""Known fixes, as data tied to the causes they address, and the search that tries them.

A remedy is a change of the app container's environment, and for some a change of mode
(the documented host-network fix is `--network host` plus two variables), so trying one is
the same real cell run again with that env added, in that mode; whether it turns the cell
green is what the rerun shows, never what this table claims. Which remedies a cell may try
is its generation's list (harness/generations.py); each remedy names the causes and the
directions it addresses. docs/remedies.md says where each comes from; files named here without a path
in this repository are OpenHands' own, in its openhands-ai wheel.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness import generations, modes
from harness.host import firewall, hostchange
from harness.model import Cause, CellResult, Direction, RemedyTry, Verdict
from harness.modes import APP_PORT_TOKEN, DOCKER_SOCKET

APP_PORT = APP_PORT_TOKEN  # in a remedy's env: the port the rerun's app is reached at (3000 in a docker run)


@dataclass(frozen=True)
class Context:
    gateway: str | None  # the default bridge's gateway (what host-gateway maps to)
    runtime_seconds: float | None = None  # how long the failed cell's runtime took to answer
    mode: str | None = None  # the failed cell's mode
    api: str = ""  # the failed cell's API generation (set from its result by `applicable`)
    version: str | None = None  # ... and its release, whose facts may differ (Generation.at)
    # The failed cell is a user's deployment (harness/deployments): a remedy is a change to
    # it, never a move to a built-in mode; `app_port` is the host port its API is published at.
    deployment: bool = False
    app_port: int = 3000
    network: str = ""  # a deployment's network kind (modes.ModeSpec.network): default, host or own
    extra_hosts: tuple[str, ...] = ()  # the names the deployment maps already (extra_hosts, --add-host)
    own_command: bool = False  # the deployment sets the app's command (so the harness cannot move its port)
    api_on_loopback: bool = False  # the deployment publishes the app's port on loopback only (127.0.0.1:3000:3000)
    # The host firewall's rules that stopped the failed cell's connects, the bridge they came
    # from (a pattern: `br-+` for a network of the cell's own, made anew by the rerun) and the
    # host ports the rerun's runtime or app will use.
    firewall: tuple[firewall.Rule, ...] = ()
    bridge: str = "docker0"
    ports: str = ""
    # A rootless daemon: the gateway is a bridge inside RootlessKit's namespace, where its
    # docker-proxy does not listen; this machine's published ports are at the host alias, when
    # slirp4netns maps it to the loopback (host/rootlesskit.py). None: not rootless, or no alias
    # that reaches the loopback (then no address here reaches them without this machine's own).
    rootless: bool = False
    host_alias: str | None = None
    # A remote daemon: a host change (this machine's /etc/hosts, its firewall) is not a change
    # to the daemon's host, so none is tried there.
    remote: bool = False
    # The deployment gives its app a Docker socket (spec.ServiceSpec.mounts_socket).
    mounts_socket: bool = True

    @property
    def published_at(self) -> str | None:
        """Where a container reaches a port published on the daemon's host."""
        return self.host_alias if self.rootless else self.gateway


@dataclass(frozen=True)
class Remedy:
    name: str
    causes: tuple[Cause, ...]
    env: Callable[[Context], dict[str, str] | None]  # None: not applicable on this host
    why: str
    mode: str | None = None  # rerun the cell in this mode (None: its own)
    directions: tuple[Direction | None, ...] = (Direction.FORWARD, None)  # the callback needs its own fixes
    # A change to this machine for the length of the rerun, undone after (hostchange.py): the
    # remedy then asks the most of the host, and the rerun has the machine to itself.
    host_change: Callable[[Context], contextlib.AbstractContextManager[str]] | None = None
    # Names the app container gains (`--add-host NAME:ADDRESS`); None: not applicable here.
    hosts: Callable[[Context], dict[str, str] | None] | None = None
    # An address the deployment's app port is published on too (`-p ADDRESS:PORT:3000`).
    publish: Callable[[Context], str | None] | None = None
    # Mounts the deployment's container gains (`-v SOURCE:TARGET`); None: not applicable here.
    volumes: Callable[[Context], tuple[str, ...] | None] | None = None

    @property
    def asks(self) -> int:
        """How much it asks of the host: 0 settings, 1 a move to another mode, 2 a change to the host."""
        return 2 if self.host_change else 1 if self.mode else 0


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


def _gateway(key: str) -> Callable[[Context], dict[str, str] | None]:
    return lambda ctx: {key: ctx.published_at} if ctx.published_at else None


def _gen(ctx: Context) -> generations.Generation:
    return generations.get(ctx.api).at(ctx.version)


def _no_proxy(ctx: Context) -> dict[str, str]:
    hosts = ",".join(h for h in ("host.docker.internal", "localhost", "127.0.0.1", ctx.gateway) if h)
    return {"NO_PROXY": hosts, "no_proxy": hosts}


def _grace(ctx: Context) -> dict[str, str] | None:
    """Three times what the runtime took here, at least a minute, in the generation's setting."""
    setting = _gen(ctx).startup_grace_env
    return {setting: str(max(60, math.ceil(3 * (ctx.runtime_seconds or 0))))} if setting else None


def _on_host_network(ctx: Context) -> bool:
    mode = modes.MODES.get(ctx.mode or "")
    return ctx.network == "host" if ctx.deployment else mode is not None and mode.network == "host"


def _loopback_only(ctx: Context) -> bool:
    """A deployment publishes the app on 127.0.0.1 only, off the host network: no address a
    sandbox can name reaches it (host.docker.internal and the gateway are the same address),
    so a callback remedy that only changes the URL cannot pass and is not rerun."""
    return ctx.deployment and ctx.api_on_loopback and not _on_host_network(ctx)


def _sandbox_on_host_network(ctx: Context) -> bool:
    """The sandbox shares the host's network with the app: not before 1.3.0, whose sandbox
    stays on the default bridge while the app is on the host network."""
    return _on_host_network(ctx) and bool(_gen(ctx).host_network_env)


def _app_address(ctx: Context) -> str | None:
    """Where the sandbox reaches the app without host.docker.internal: beside the app on the
    host network, the host's loopback; from a bridge, the gateway, where the app's port is
    published or (an app on the host network) where it listens too."""
    if _loopback_only(ctx):
        return None
    return "127.0.0.1" if _sandbox_on_host_network(ctx) else ctx.published_at


def _web_url(ctx: Context) -> dict[str, str] | None:
    at = _app_address(ctx)
    return {"OH_WEB_URL": f"http://{at}:{APP_PORT}"} if at else None


def _extra_webhook(ctx: Context) -> dict[str, str] | None:
    """A second webhook, through the app's setting for its sandbox's env (none before 1.1.0)."""
    at, setting = _app_address(ctx), _gen(ctx).sandbox_env_setting
    hook = {"OH_WEBHOOKS_1_BASE_URL": f"http://{at}:{APP_PORT}/api/v1/webhooks"}
    return {setting: json.dumps(hook)} if at and setting else None


def _url_pattern(ctx: Context, host: str | None) -> dict[str, str] | None:
    """The app reaches its sandbox's published port at `host`, in the release's own setting."""
    setting = _gen(ctx).url_pattern_env
    return {setting: f"http://{host}:{{port}}"} if setting and host else None


def _both(ctx: Context) -> dict[str, str] | None:
    web, hook = _web_url(ctx), _extra_webhook(ctx)
    return {**web, **hook} if web and hook else None


def _callback_port(ctx: Context) -> dict[str, str] | None:
    """A deployment that publishes the app elsewhere than 3000 (`4000:3000`): the 1.x sandbox
    calls back SANDBOX_HOST_PORT, default 3000, and OH_WEB_URL: both at the published port."""
    setting = _gen(ctx).callback_port_env
    if not setting or not ctx.deployment or ctx.app_port == 3000 or _loopback_only(ctx):
        return None
    return {setting: APP_PORT, "OH_WEB_URL": f"http://host.docker.internal:{APP_PORT}"}


def _host_gateway(ctx: Context) -> dict[str, str] | None:
    """A deployment that does not map host.docker.internal (a `docker run` line without
    `--add-host`): Docker on Linux adds no such name by itself."""
    if not ctx.deployment or "host.docker.internal" in ctx.extra_hosts or _on_host_network(ctx):
        return None
    return {"host.docker.internal": "host-gateway"}


def _gateway_publish(ctx: Context) -> str | None:
    """A deployment that publishes the app on loopback only: the sandbox calls it back at the
    bridge gateway, so the port is published there too (still not on the host's other addresses)."""
    return ctx.gateway if _loopback_only(ctx) else None


def _host_alias(ctx: Context) -> dict[str, str] | None:
    """On a rootless daemon whose host alias reaches this machine's loopback: the app reaches
    its runtime's published port there, and (1.x) the sandbox the app's, both ways at once,
    since both stop at RootlessKit's gateway."""
    if not ctx.rootless or not ctx.host_alias or _on_host_network(ctx):
        return None
    gen = _gen(ctx)
    if not gen.callback:
        return {"DOCKER_HOST_ADDR": ctx.host_alias}
    return {**(_url_pattern(ctx, ctx.host_alias) or {}), **(_both(ctx) or {})}


def _socket_mount(ctx: Context) -> tuple[str, ...] | None:
    """A deployment that mounts no Docker socket: the documented mount, which the app's
    runtime starter needs (a built-in mode always has it)."""
    return None if not ctx.deployment or ctx.mounts_socket else (f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",)


def _firewall_accept(ctx: Context) -> contextlib.AbstractContextManager[str]:
    return firewall.accept_bridge_to_host(ctx.ports, ctx.bridge, list(ctx.firewall))


def _hosts_line(ctx: Context) -> contextlib.AbstractContextManager[str]:
    return hostchange.hosts_entry("127.0.0.1", "host.docker.internal")


DNS, TIMEOUT, REFUSED = Cause.DNS_UNRESOLVED, Cause.CONNECT_TIMEOUT, Cause.CONNECTION_REFUSED
REJECTED = Cause.CONNECTION_REJECTED

REMEDIES: dict[str, Remedy] = {r.name: r for r in (
    Remedy("mount-docker-socket", (Cause.DOCKER_UNREACHABLE,), lambda ctx: {},
           "the documented `-v /var/run/docker.sock:/var/run/docker.sock`: the app starts its runtime through "
           "the daemon's socket, and without it has no daemon to ask", volumes=_socket_mount),
    Remedy("add-host-gateway", (DNS,), lambda ctx: {},
           "the documented `--add-host host.docker.internal:host-gateway`: Docker on Linux does not "
           "give a container that name, so neither the app's polls nor its sandbox URL resolve",
           directions=(Direction.FORWARD, Direction.CALLBACK, None), hosts=_host_gateway),
    Remedy("docker-host-addr", (DNS, TIMEOUT),
           _gateway("DOCKER_HOST_ADDR"),
           "V0 polls http://$DOCKER_HOST_ADDR:PORT instead of host.docker.internal "
           "(OpenHands' docker_runtime.py L123-129)"),
    Remedy("host-network-trio", (DNS, TIMEOUT, REFUSED, REJECTED),
           lambda ctx: {"SANDBOX_USE_HOST_NETWORK": "true", "DOCKER_HOST_ADDR": "127.0.0.1"},
           "the documented host-network setup: app and runtime on the host network, runtime "
           "polled on 127.0.0.1, so no packet crosses a bridge or the host's INPUT chain",
           mode="host"),
    Remedy("own-network", (TIMEOUT, REJECTED), lambda ctx: {},
           "the app on a user-defined network: its SYNs reach the published port through that "
           "network's own bridge and Docker's NAT, not docker0 to the host's INPUT chain, where host "
           "firewalls (ufw, firewalld, a cloud image's REJECT) drop or reject them",
           mode="custom-network"),
    Remedy("bind-all-addresses", (REFUSED,),
           lambda ctx: {"SANDBOX_RUNTIME_BINDING_ADDRESS": "0.0.0.0"},
           "publish the runtime's ports on every address, not loopback only"),
    Remedy("no-proxy", (Cause.PROXY,), _no_proxy,
           "keep the runtime host out of the app's HTTP(S)_PROXY (httpx honours NO_PROXY)"),
    Remedy("v1-url-pattern", (DNS, TIMEOUT),
           lambda ctx: _url_pattern(ctx, ctx.published_at),
           "reach the sandbox at the bridge gateway instead of host.docker.internal"),
    Remedy("v1-startup-grace", (Cause.STARTUP_GRACE,), _grace,
           "give the sandbox longer than the app's default 15 s to answer /health on a host this slow"),
    # The sandbox's calls back (V1, OpenHands' app_server/sandbox/docker_sandbox_service.py at 1.11.0): MCP and
    # secrets at OH_WEB_URL (default http://host.docker.internal:SANDBOX_HOST_PORT); webhooks at a
    # hard-coded host.docker.internal URL, to which OH_AGENT_SERVER_ENV can add a second one.
    Remedy("v1-web-url", (DNS, TIMEOUT, REFUSED), _web_url,
           "MCP and secrets at an address the sandbox reaches (OH_WEB_URL); webhooks still go to "
           "host.docker.internal", directions=(Direction.CALLBACK,)),
    Remedy("v1-extra-webhook", (DNS, TIMEOUT, REFUSED), _extra_webhook,
           "a second webhook at an address the sandbox reaches (OH_AGENT_SERVER_ENV adds "
           "OH_WEBHOOKS_1_BASE_URL); MCP still at host.docker.internal", directions=(Direction.CALLBACK,)),
    Remedy("v1-callback-urls", (DNS, TIMEOUT, REFUSED), _both,
           "both calls back at an address the sandbox reaches: OH_WEB_URL for MCP, a second webhook "
           "through OH_AGENT_SERVER_ENV", directions=(Direction.CALLBACK,)),
    Remedy("v1-published-port", (DNS, TIMEOUT, REFUSED), _callback_port,
           "the sandbox calls the app back at the port it is published at: SANDBOX_HOST_PORT (default 3000) "
           "and OH_WEB_URL name it", directions=(Direction.CALLBACK,)),
    Remedy("publish-on-gateway", (REFUSED,), lambda ctx: {},
           "the app's port published on the bridge gateway too: the sandbox calls the app back at "
           "host.docker.internal, which is the gateway, where a port published on 127.0.0.1 does not answer",
           directions=(Direction.CALLBACK,), publish=_gateway_publish),
    Remedy("rootless-host-alias", (REFUSED, DNS, TIMEOUT), _host_alias,
           "on a rootless daemon host.docker.internal (host-gateway) is a bridge inside RootlessKit's namespace, "
           "where its docker-proxy does not listen: the published ports at slirp4netns' host alias instead, "
           "which maps to this machine's loopback, where RootlessKit's port driver publishes them",
           directions=(Direction.FORWARD, Direction.CALLBACK, None)),
    Remedy("firewall-accept", (REJECTED, TIMEOUT), lambda ctx: {} if ctx.firewall and ctx.ports else None,
           "a host change: an accept rule for TCP from the bridge to the runtime's (and, for 1.x, the app's) "
           "host ports, ahead of the firewall rule that rejected or dropped them, in each front end holding one; "
           "made for the rerun only and deleted after it", directions=(Direction.FORWARD, Direction.CALLBACK, None),
           host_change=_firewall_accept),
    # Not on a rootless daemon: dockerd-rootless.sh runs RootlessKit with --copy-up=/etc, so the
    # daemon's /etc is a copy taken when it started, and this machine's /etc/hosts changed later
    # never reaches its containers (measured: the rerun stayed dns-unresolved).
    Remedy("v1-hosts-entry", (DNS,), lambda ctx: {} if _sandbox_on_host_network(ctx) and not ctx.rootless else None,
           "a host change: `127.0.0.1 host.docker.internal` in this machine's /etc/hosts, which a "
           "host-network sandbox copies; undone after the rerun", directions=(Direction.CALLBACK,),
           host_change=_hosts_line),
)}


def unknown_names() -> list[str]:
    """Remedy names a generation lists that this table does not define (a test keeps it empty)."""
    return [f"{g.name}: {n}" for g in generations.GENERATIONS.values() for n in g.remedies if n not in REMEDIES]


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
    if env is None or hosts is None or publish is None or volumes is None:
        return None
    mode = r.mode if r.mode not in (None, result.mode) else None
    network_mode = None
    if ctx.deployment and mode is not None:
        # A deployment is fixed in its own file, not replaced by a built-in mode: it takes the
        # mode's host network itself (its command must leave the port to the harness), no other.
        if modes.get(mode).network != "host":
            return None
        if ctx.network != "host" and ctx.own_command:
            return None
        mode, network_mode = None, None if ctx.network == "host" else "host"
    if not (env or hosts or publish or volumes or r.host_change or mode or network_mode):
        return None
    return Change(env, mode, network_mode, hosts, publish or None, volumes)


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
                               verdict=again.connect.verdict, cause=again.connect.cause,
                               direction=again.connect.direction, seconds=again.connect.seconds,
                               runtime_url=again.connect.runtime_url, docker_run=again.docker_run,
                               evidence=_decision(again),
                               host_change=change or None,
                               asks=1 if todo.network_mode else remedy.asks))
    return tried
