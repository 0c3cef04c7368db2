"""What a failed cell's remedies may ask about it and its host, built in one place
(`Context.of`) from the cell's result, the cell and the run's context: the table's entries
read these facts and ask the cell's mode and generation, never the runner's variables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import endpoint, generations, modes
from harness.context import RunContext
from harness.host import containers, firewall
from harness.matrix import Cell
from harness.model import Cause, CellResult, Direction, Host, ImageSet


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
    # The `--exclude-newer` time of the release's cut (its pinned packages' upload + a day), for
    # a native install whose uvx resolved today's packages (ImageSet.native).
    release_cut: str | None = None
    # The failed cell's own NO_PROXY, and what its app gives its sandbox through the
    # generation's setting for the sandbox's environment (OH_AGENT_SERVER_ENV's JSON, as given).
    no_proxy: str = ""
    sandbox_env: str = ""
    # The daemon's userland proxy (Host.userland_proxy: on, off; None: not read): without it,
    # Docker up to 28 NATs a connect from one bridge to a port published by a container on
    # another, and its own isolation rules drop it (moby PR #49981 removed them in 29.0).
    userland_proxy: str | None = None
    # The folders an agent-server in the app's container hands, by their paths there, to the
    # conversation containers it starts (the Docker conversation runtime); () when it has none.
    runtime_folders: tuple[str, ...] = ()

    @classmethod
    def of(cls, result: CellResult, cell: Cell, ctx: RunContext) -> Context:
        """The failed cell's facts: its mode (or the user's deployment it is), its
        generation and release, the run's host, and the firewall's rules on its path."""
        dep = cell.mode.deployment
        return cls(gateway=ctx.host.bridge_gateway, runtime_seconds=result.boot.runtime_seconds,
                   mode=cell.mode.name, api=result.api, version=result.resolved_version,
                   deployment=dep is not None, app_port=dep.api_host_port if dep else 3000,
                   network=dep.network if dep else "", extra_hosts=tuple(dep.service.extra_hosts) if dep else (),
                   own_command=bool(dep and dep.service.command), api_on_loopback=bool(dep and dep.api_on_loopback),
                   rootless=bool(ctx.host.rootless), host_alias=_loopback_alias(ctx.host),
                   remote=bool(ctx.host.remote), mounts_socket=dep.service.mounts_socket() if dep else True,
                   release_cut=_release_cut(ctx, cell.target.tag),
                   no_proxy=result.app_env.get("NO_PROXY") or result.app_env.get("no_proxy") or "",
                   sandbox_env=result.app_env.get(generations.get(result.api).sandbox_env_setting or "", ""),
                   userland_proxy=ctx.host.userland_proxy, runtime_folders=_runtime_folders(result),
                   **_firewall_facts(result, cell, ctx.host))

    @property
    def published_at(self) -> str | None:
        """Where a container reaches a port published on the daemon's host."""
        return self.host_alias if self.rootless else self.gateway

    @property
    def gen(self) -> generations.Generation:
        """The failed cell's generation, as its release has it."""
        return generations.get(self.api).at(self.version)

    @property
    def on_host_network(self) -> bool:
        """The app shares the host's network: the built-in mode says so, or the deployment's
        own network kind is the host's."""
        if self.deployment:
            return self.network == "host"
        mode = modes.MODES.get(self.mode or "")
        return mode is not None and mode.shares_host_ports


def _runtime_folders(result: CellResult) -> tuple[str, ...]:
    """Where the app's agent-server keeps what it mounts into each conversation container (its
    home's .openhands, the generation's workspace), when it runs them in containers."""
    gen = generations.get(result.api)
    setting = gen.conversation_runtime_setting
    if not setting or result.app_env.get(setting, "").strip().lower() != "docker":
        return ()
    return (f"{result.app_env.get('HOME') or gen.app_home}/.openhands", gen.workspace)


def _release_cut(ctx: RunContext, tag: str) -> str | None:
    images = ctx.images.get(tag)
    return images.native.get("exclude_newer") if isinstance(images, ImageSet) else None


def _firewall_facts(result: CellResult, cell: Cell, host: Host) -> dict[str, Any]:
    """For a cell a firewall rejected or dropped: the rules that did it, the bridge its
    connects came from and the host ports the rerun will use, read from this machine only
    when its daemon is local."""
    if result.connect.cause not in (Cause.CONNECTION_REJECTED, Cause.CONNECT_TIMEOUT) or endpoint.remote():
        return {}
    callback = result.connect.direction == Direction.CALLBACK
    default = host.bridge.get("name") or "docker0"
    spec = cell.mode.spec
    own_bridge = "lo" if spec.shares_host_ports else "br-+"
    bridge = default if callback or spec.network == "default" else own_bridge
    gen = generations.get(result.api)
    runtime = gen.runtime_host_ports or firewall.ephemeral_ports()
    # where the sandbox calls the app back: the host port the harness publishes the app on
    app = f"{containers.HARNESS_PORTS[0]}:{containers.HARNESS_PORTS[-1]}"
    # a generation that calls back needs both ways open for the rerun to pass (measured: 1.11's
    # rerun with the runtime's ports accepted met the same reject on its callback)
    ports = app if callback else _span(runtime, app) if gen.callback else runtime
    sample = bridge.replace("+", "0")
    return {"firewall": tuple(firewall.matching(firewall.rules(), sample, None)), "bridge": bridge, "ports": ports}


def _span(*ranges: str) -> str:
    """One `LO:HI` range over these (an accept rule takes one): from the lowest to the highest."""
    spans = [tuple(int(x) for x in r.split(":")) for r in ranges]
    return f"{min(a for a, _ in spans)}:{max(b for _, b in spans)}"


def _loopback_alias(host: Host) -> str | None:
    """A rootless daemon's host alias, when it reaches this machine's loopback."""
    kit = host.rootlesskit
    return kit.host_alias if kit is not None and kit.host_loopback else None
