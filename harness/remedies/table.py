"""The known fixes, as data: each remedy names the causes and the directions it addresses
and what it changes (the app's environment, a move to another mode, names, a published
address, mounts, a change to this machine for the rerun), each a function of the failed
cell's facts (context.Context) that answers None where it does not apply. Which remedies a
cell may try is its generation's list (harness/generations.py). docs/remedies.md says where
each comes from; files named here without a path in this repository are OpenHands' own, in
its openhands-ai wheel.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from harness import generations, modes
from harness.host import firewall, hostchange
from harness.model import Cause, Direction
from harness.modes import APP_PORT_TOKEN, DOCKER_SOCKET
from harness.remedies.context import Context

APP_PORT = APP_PORT_TOKEN  # in a remedy's env: the port the rerun's app is reached at (3000 in a docker run)


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
    # The container port the deployment's published app port goes to instead; None: not here.
    republish: Callable[[Context], int | None] | None = None

    @property
    def asks(self) -> int:
        """How much it asks of the host: 0 settings, 1 a move to another mode, 2 a change to the host."""
        return 2 if self.host_change else 1 if self.mode else 0


def _gateway(key: str) -> Callable[[Context], dict[str, str] | None]:
    return lambda ctx: {key: ctx.published_at} if ctx.published_at else None


def _same_paths(ctx: Context) -> tuple[str, ...] | None:
    """Each of the app's runtime folders mounted at its own path; None where one exists on this
    machine already (it is someone's: the rerun would write into it)."""
    if not ctx.runtime_folders or any(os.path.lexists(p) for p in ctx.runtime_folders):
        return None
    return tuple(f"{p}:{p}" for p in ctx.runtime_folders)


def _no_proxy_hosts(ctx: Context, before: str) -> str:
    """`before` (a NO_PROXY as given), with the names and addresses the parts call each other
    at on this machine: host.docker.internal, the loopback, the bridge's gateway."""
    given = [h.strip() for h in before.split(",") if h.strip()]
    wanted = [h for h in ("host.docker.internal", "localhost", "127.0.0.1", ctx.gateway) if h and h not in given]
    return ",".join([*given, *wanted])


def _no_proxy(ctx: Context) -> dict[str, str]:
    hosts = _no_proxy_hosts(ctx, ctx.no_proxy)
    return {"NO_PROXY": hosts, "no_proxy": hosts}


def _sandbox_no_proxy(ctx: Context) -> dict[str, str] | None:
    """The sandbox's own NO_PROXY, in the app's setting for the sandbox's environment (1.x:
    OH_AGENT_SERVER_ENV, JSON), beside whatever the cell gave it there already."""
    setting = ctx.gen.sandbox_env_setting
    if not setting:
        return None
    try:
        given = json.loads(ctx.sandbox_env) if ctx.sandbox_env else {}
    except ValueError:
        return None  # not JSON: the app would not read it either; nothing to add to
    if not isinstance(given, dict):
        return None
    hosts = _no_proxy_hosts(ctx, str(given.get("NO_PROXY") or given.get("no_proxy") or ""))
    return {setting: json.dumps({**given, "NO_PROXY": hosts, "no_proxy": hosts})}


def _grace(ctx: Context) -> dict[str, str] | None:
    """Three times what the runtime took here, at least a minute, in the generation's setting."""
    setting = ctx.gen.startup_grace_env
    return {setting: str(max(60, math.ceil(3 * (ctx.runtime_seconds or 0))))} if setting else None


def _loopback_only(ctx: Context) -> bool:
    """A deployment publishes the app on 127.0.0.1 only, off the host network: no address a
    sandbox can name reaches it (host.docker.internal and the gateway are the same address),
    so a callback remedy that only changes the URL cannot pass and is not rerun."""
    return ctx.deployment and ctx.api_on_loopback and not ctx.on_host_network


def _sandbox_on_host_network(ctx: Context) -> bool:
    """The sandbox shares the host's network with the app: not before 1.3.0, whose sandbox
    stays on the default bridge while the app is on the host network."""
    return ctx.on_host_network and bool(ctx.gen.host_network_env)


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
    at, setting = _app_address(ctx), ctx.gen.sandbox_env_setting
    hook = {"OH_WEBHOOKS_1_BASE_URL": f"http://{at}:{APP_PORT}/api/v1/webhooks"}
    return {setting: json.dumps(hook)} if at and setting else None


def _url_pattern(ctx: Context, host: str | None) -> dict[str, str] | None:
    """The app reaches its sandbox's published port at `host`, in the release's own setting."""
    setting = ctx.gen.url_pattern_env
    return {setting: f"http://{host}:{{port}}"} if setting and host else None


def _both(ctx: Context) -> dict[str, str] | None:
    web, hook = _web_url(ctx), _extra_webhook(ctx)
    return {**web, **hook} if web and hook else None


def _callback_port(ctx: Context) -> dict[str, str] | None:
    """A deployment that publishes the app elsewhere than 3000 (`4000:3000`): the 1.x sandbox
    calls back SANDBOX_HOST_PORT, default 3000, and OH_WEB_URL: both at the published port."""
    setting = ctx.gen.callback_port_env
    if not setting or not ctx.deployment or ctx.app_port == 3000 or _loopback_only(ctx):
        return None
    return {setting: APP_PORT, "OH_WEB_URL": f"http://host.docker.internal:{APP_PORT}"}


def _host_gateway(ctx: Context) -> dict[str, str] | None:
    """A deployment that does not map host.docker.internal (a `docker run` line without
    `--add-host`): Docker on Linux adds no such name by itself."""
    if not ctx.deployment or "host.docker.internal" in ctx.extra_hosts or ctx.on_host_network:
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
    if not ctx.rootless or not ctx.host_alias or ctx.on_host_network:
        return None
    gen = ctx.gen
    if not gen.callback:
        return {"DOCKER_HOST_ADDR": ctx.host_alias}
    return {**(_url_pattern(ctx, ctx.host_alias) or {}), **(_both(ctx) or {})}


def _socket_mount(ctx: Context) -> tuple[str, ...] | None:
    """A deployment that mounts no Docker socket: the documented mount, which the app's
    runtime starter needs (a built-in mode always has it)."""
    return None if not ctx.deployment or ctx.mounts_socket else (f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",)


def _across_bridges(ctx: Context) -> bool:
    """The failed cell's app is on a network of its own and the daemon's userland proxy is off:
    its connects to the runtime's published port cross from one bridge to another."""
    own = ctx.network == "own" if ctx.deployment else (ctx.mode or "") in modes.MODES and \
        modes.get(ctx.mode or "").network == "own"
    return ctx.userland_proxy == "off" and own


def _firewall_accept(ctx: Context) -> contextlib.AbstractContextManager[str]:
    return firewall.accept_bridge_to_host(ctx.ports, ctx.bridge, list(ctx.firewall))


def _hosts_line(ctx: Context) -> contextlib.AbstractContextManager[str]:
    return hostchange.hosts_entry("127.0.0.1", "host.docker.internal")


DNS, TIMEOUT, REFUSED = Cause.DNS_UNRESOLVED, Cause.CONNECT_TIMEOUT, Cause.CONNECTION_REFUSED
REJECTED = Cause.CONNECTION_REJECTED

REMEDIES: dict[str, Remedy] = {r.name: r for r in (
    Remedy("session-key", (Cause.LOOPBACK_BOUND,),
           lambda ctx: {"SESSION_API_KEY": secrets.token_urlsafe(24)},
           "give the agent-server a session key (`SESSION_API_KEY`): from 1.37.1 it binds 0.0.0.0 only when "
           "one is set, else 127.0.0.1 (agent_server/__main__.py), and then every caller must send it "
           "(X-Session-API-Key)"),
    Remedy("uv-exclude-newer", (Cause.AGENT_SERVER_EXITED,),
           lambda ctx: {"UV_EXCLUDE_NEWER": ctx.release_cut} if ctx.release_cut else None,
           "keep uv to the packages of the release's day (`UV_EXCLUDE_NEWER`, which uvx reads): the launcher's "
           "uvx pins only the agent-server and resolves everything under it today, so a newer dependency "
           "(fastapi 0.165 for agent-server 1.44.0) can break it at import; the day is the later upload of the "
           "two packages the release pins plus one, as the harness's image resolves it (docs/canvas.md)"),
    Remedy("outer-on-host", (Cause.OWN_LOOPBACK, Cause.OWN_PATHS), lambda ctx: {} if ctx.runtime_folders else None,
           "the agent-server's container on the host's network, where the 127.0.0.1 it dials its conversation "
           "containers at is the host's, with its folders bind-mounted at the same paths on the host "
           "(owned by its user), so the paths it hands the daemon for their mounts are the host's too "
           "(agent_server/docker_runtime/registry.py)",
           mode="host", directions=(Direction.FORWARD,), volumes=_same_paths),
    Remedy("publish-app-port", (Cause.APP_NOT_PUBLISHED,), lambda ctx: {},
           "publish the app's own port where you reach it: the app server listens on 3000 in its container, "
           "Agent Canvas on 8000 (docker/entrypoint.sh PORT), and a mapping carried from one to the other "
           "opens a port where nothing listens",
           republish=lambda ctx: ctx.gen.app_port if ctx.deployment else None),
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
    Remedy("sandbox-network", (TIMEOUT,), lambda ctx: {} if _across_bridges(ctx) else None,
           "the app on the runtime's network, the default bridge (with host.docker.internal mapped to its "
           "gateway): with the daemon's userland proxy off, Docker up to 28 NATs a connect from the app's own "
           "network to the runtime's published port straight to the runtime's bridge, where its own isolation "
           "rules drop it (moby PR #49981); on one bridge nothing crosses them. The other fix is the daemon's: "
           "`\"userland-proxy\": true` (its default) in daemon.json, or Docker 29",
           mode="host-gateway", directions=(Direction.FORWARD, Direction.CALLBACK, None)),
    Remedy("own-network", (TIMEOUT, REJECTED), lambda ctx: None if ctx.userland_proxy == "off" else {},
           "the app on a user-defined network: its SYNs reach the published port through that "
           "network's own bridge and Docker's NAT, not docker0 to the host's INPUT chain, where host "
           "firewalls (ufw, firewalld, a cloud image's REJECT) drop or reject them",
           mode="custom-network"),
    Remedy("bind-all-addresses", (REFUSED,),
           lambda ctx: {"SANDBOX_RUNTIME_BINDING_ADDRESS": "0.0.0.0"},
           "publish the runtime's ports on every address, not loopback only"),
    Remedy("no-proxy", (Cause.PROXY,), _no_proxy,
           "keep the runtime host out of the app's HTTP(S)_PROXY (httpx honours NO_PROXY)"),
    Remedy("sandbox-no-proxy", (Cause.PROXY,), _sandbox_no_proxy,
           "keep the app out of the sandbox's HTTP(S)_PROXY: the 1.x app passes the sandbox only its LLM_* "
           "variables and what OH_AGENT_SERVER_ENV (JSON) adds, so the sandbox's NO_PROXY goes there too "
           "(OpenHands #15018)", directions=(Direction.CALLBACK,)),
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
