"""Watching a runtime come up, on the harness's own clock: one look is an `Observation`
(the daemon's state of both containers, the app's own account, the probes along each
path), the `Judge` (diagnosis.py) turns looks into a decision, and the loop stops at the
first decision or at the connect budget.

A `Watch` is what an entry point knows of its runtime (the API cell's conversation, the
headless cell's process); `look` asks it and the containers, and returns what it saw and
nothing else. The only thing a look remembers across looks is the host firewall's rules,
read once per cell (`FirewallView`): a look at them is a subprocess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

import docker
from docker.models.containers import Container

from harness import endpoint
from harness.cells.diagnosis import Decision, Judge, Observation
from harness.cells.facts import address_of, bridge_of, inner_port, published_on, where
from harness.errors import AdapterError
from harness.host import docker_host, firewall
from harness.host.containers import tail
from harness.host.netprobe import NetProbe, bypasses_proxy
from harness.host.probes import probe_from, proxy_env, proxy_for
from harness.model import Cause, strip_ansi
from harness.openhands import Rules, RuntimeState, docker_failure

POLL = 2.0


class Watch(Protocol):
    """What the connect watch needs to know about one runtime, per entry point."""

    def runtime(self) -> Container | None: ...
    def state(self) -> RuntimeState: ...  # the app's own account; raises AdapterError
    def runtime_url(self, app_logs: str, runtime: Container | None) -> str | None: ...
    def callback_target(self) -> tuple[str, int] | None: ...
    def runtime_failure(self, app_logs: str) -> str | None: ...  # the app's own line naming one
    def callbacks(self, runtime: Container) -> list[tuple[str, str]]: ...  # (label, url) it calls the app at
    def callback_story(self, runtime: Container) -> list[str]: ...  # its log of those calls, event counts
    def runtime_running(self, runtime: Container) -> None: ...  # on every look while it runs
    def callback_health(self) -> str: ...  # the app's health path, asked of a sandbox's proxy


class RulesWatch:
    """The parts of a Watch that the generation's rules answer from what the app shows (its
    log, its environment), shared by the entry points; they add the runtime and its state."""

    def __init__(self, rules: Rules, app_env: Callable[[], dict[str, str]]) -> None:
        self.rules, self.app_env = rules, app_env

    def runtime_url(self, app_logs: str, runtime: Container | None) -> str | None:
        return self.rules.runtime_url(app_logs, self.app_env(), runtime.attrs if runtime is not None else None)

    def callback_target(self) -> tuple[str, int] | None:
        return self.rules.callbacks.target(self.app_env()) if self.rules.callbacks else None

    def runtime_failure(self, app_logs: str) -> str | None:
        return self.rules.failure_log.line(app_logs) if self.rules.failure_log else None

    def callback_health(self) -> str:
        return self.rules.callbacks.health_path if self.rules.callbacks else "/"


class FirewallView:
    """The host firewall's rules that meet a probe that did not get through: read once per
    cell and only then, with the bridge each caller's packets arrive on."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.read = False
        self.rules: list[firewall.Rule] | None = None
        self.nat: list[firewall.NatRule] | None = None
        self.forward: tuple[dict[str, list[firewall.FilterRule]], str] | None = None
        self.subnets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []  # -> its bridge
        self.default_bridge = "docker0"
        self.bridges: dict[str, str] = {}  # container id -> its bridge

    def on(self, caller: Container, p: NetProbe | None) -> list[firewall.Rule] | None:
        if p is None or p.tcp not in ("refused", "unreachable", "timeout"):
            return None
        if not self.read:
            self.read = True
            if not endpoint.remote():  # a remote daemon's live there
                self.rules, self.nat, self.forward = firewall.rules(), firewall.nat_rules(), firewall.forward_rules()
            self.default_bridge = docker_host.bridge_options(self.client).get("name", "docker0")
            self.subnets = bridge_subnets(self.client)
        if caller.id not in self.bridges:
            self.bridges[caller.id] = bridge_of(self.client, caller)
        bridge = self.bridges[caller.id]
        dst = p.addresses[0] if p.addresses else None
        nat = (firewall.dnat(self.nat, bridge, p.port, dst) if self.rules is not None and self.nat is not None
               and dst is not None and firewall.local(dst) else None)
        if nat is not None:  # the daemon NATs it to a published port's container: the FORWARD path
            return self.forwarded(bridge, address_of(caller), nat)
        if self.rules is None or not self.meets_input(bridge, p.port, dst):
            return None
        # From the caller's address on its bridge (on the host network, the address it knocks
        # at: the kernel picks a local destination as its source) to where the probe knocked.
        return firewall.matching(self.rules, bridge, p.port, dst if bridge == "lo" else address_of(caller), dst)

    def forwarded(self, bridge: str, src: str | None, nat: firewall.NatRule) -> list[firewall.Rule] | None:
        """A connect the daemon DNATs to a published port's container: the rule of the filter
        table's FORWARD path (the daemon's isolation between bridges, DOCKER-USER) that stops it
        on its way from `bridge` to the container's bridge, with the DNAT that sent it there."""
        to, _, port = nat.to.rpartition(":")
        out = next((b for net, b in self.subnets if _in(to, net)), None)
        if self.forward is None or out is None or not port.isdigit():
            return None
        stop = firewall.forward_stop(*self.forward, bridge, out, src, to, int(port))
        return [] if stop is None else [dataclasses.replace(stop, via=nat.text)]

    def meets_input(self, bridge: str, port: int, dst: str | None) -> bool:
        """Whether a connect from `bridge` to `dst`:`port` meets this host's INPUT chain: it
        knocks at a local address, and the daemon's nat DOCKER chain lets it through to a
        local socket (the userland proxy's `-i BRIDGE -j RETURN`, on any bridge) rather than
        NAT it to the container (a published port's DNAT, through FORWARD). Without the nat
        chain read, only the default bridge's, as Docker's proxy sets it up."""
        if bridge == "lo":
            return True
        if dst is not None and not firewall.local(dst):
            return False  # a container's own address: bridged or routed, never INPUT
        if self.nat is None:
            return bridge == self.default_bridge
        return firewall.dnat(self.nat, bridge, port, dst) is None


def bridge_subnets(client: docker.DockerClient) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """Each bridge network's subnets and the interface its containers' packets leave the host on."""
    out = []
    for net in client.networks.list(filters={"driver": "bridge"}):
        name = (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net.id[:12]}"
        for conf in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, TypeError):
                out.append((ipaddress.ip_network(conf.get("Subnet"), strict=False), str(name)))
    return out


def _in(addr: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(addr) in net
    except ValueError:
        return False


def probe_url(container: Container, role: str, url: str) -> NetProbe:
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return probe_from(container, where(container, role), u.hostname or "", port, u.path or "/")


def through_proxy(container: Container, proxy: dict[str, str], urls: list[tuple[str, str]],
                  path: str) -> list[NetProbe]:
    """For each URL the container's HTTP client sends through its proxy (HTTP_PROXY, not
    exempted by NO_PROXY): a look at the proxy from the container, asking it for `path` at
    that URL's host and port; none when it has no proxy or exempts them all."""
    via = proxy_for(proxy)
    if via is None:
        return []
    upper = {k.upper(): v for k, v in proxy.items()}
    out = []
    for label, url in urls:
        u = urlparse(url)
        if u.hostname and not bypasses_proxy(u.hostname, upper.get("NO_PROXY", "")):
            port = u.port or (443 if u.scheme == "https" else 80)
            out.append(probe_from(container, f"{where(container, 'sandbox')} {label} via its proxy", u.hostname,
                                  port, path, via=via))
    return out


def look(watch: Watch, app: Container, t: float, url: str | None, view: FirewallView) -> Observation:
    """One look at the app, its runtime and the paths between them, `t` s into the watch;
    `url` is where the app reaches the runtime as far as an earlier look knew."""
    app.reload()
    o = Observation(t=t, app_status=app.status, app_exit=app.attrs["State"].get("ExitCode"), runtime_url=url)
    runtime = watch.runtime()
    if runtime is not None:
        state = runtime.attrs["State"]
        o.runtime_status, o.runtime_exit = runtime.status, state.get("ExitCode")
        o.runtime_oom = bool(state.get("OOMKilled"))
        o.runtime_error = str(state.get("Error") or "")
        o.runtime_restarts = int(runtime.attrs.get("RestartCount") or 0)
    logs = strip_ansi(tail(app, 400))  # an exited app's too: a headless process says why it stopped
    o.docker_failure = docker_failure(logs)
    if o.app_status == "running":
        try:
            o.state = watch.state()
        except AdapterError as e:
            o.api_error = str(e)[:300]
        o.runtime_url = url or watch.runtime_url(logs, runtime)
        o.app_failure = watch.runtime_failure(logs)
        o.proxy = proxy_env(app)
    if o.state is None:  # a headless process may be done already: its log outlives it
        with contextlib.suppress(AdapterError):
            o.state = watch.state()
    runtime_up = runtime is not None and o.runtime_status == "running"
    ready = bool(o.state and o.state.ready)
    o.runtime_answered = ready
    if ready and runtime is not None and runtime_up:
        hooks = watch.callbacks(runtime)
        o.webhook_probes = [probe_url(runtime, f"sandbox {label}", target) for label, target in hooks]
        o.sandbox_proxy = proxy_env(runtime)
        o.webhook_proxy_probes = through_proxy(runtime, o.sandbox_proxy, hooks, watch.callback_health())
    if o.app_status != "running" or ready:
        return o
    u = urlparse(o.runtime_url or "")
    if u.hostname and u.port:
        o.app_probe = probe_from(app, where(app, "app"), u.hostname, u.port)
        if runtime is not None:
            o.published_on = published_on(runtime, u.port)
        if runtime is not None and runtime_up:
            o.self_probe = probe_from(runtime, "runtime", "127.0.0.1", inner_port(runtime, u.port))
            o.runtime_answered = o.self_probe.tcp == "open"
        if (via := proxy_for(o.proxy)) is not None:
            o.proxy_probe = probe_from(app, "app via its proxy", u.hostname, u.port, via=via)
    callback = watch.callback_target()
    if callback and runtime is not None and runtime_up:
        o.callback_probe = probe_from(runtime, where(runtime, "sandbox"), callback[0], callback[1])
        o.sandbox_proxy = proxy_env(runtime)
        through = through_proxy(runtime, o.sandbox_proxy, [("calling the app", f"http://{callback[0]}:{callback[1]}")],
                                watch.callback_health())
        o.callback_proxy_probe = through[0] if through else None
        o.callback_published_on = published_on(app, callback[1])
    o.app_rules = view.on(app, o.app_probe)
    o.callback_rules = view.on(runtime, o.callback_probe) if runtime is not None else None
    return o


@dataclass
class Watched:
    """How a watch ended: the decision, the look it was made on, and the runtime's clock."""

    decision: Decision
    last: Observation | None
    runtime_url: str | None
    seconds: float
    answered_at: float | None  # epoch seconds of the first look where the runtime answered


def watch_connect(watch: Watch, app: Container, view: FirewallView, budget: float,
                  phase: Callable[[str], None], daemon: str | None = "the daemon") -> Watched:
    """Looks every POLL s until the Judge decides or `budget` runs out; `daemon`: how the
    app reaches one (AppLaunch.daemon)."""
    judge, url, t0 = Judge(daemon), None, time.monotonic()
    answered_at: float | None = None
    decision: Decision | None = None
    seen_running = False
    while decision is None:
        tick = time.monotonic()
        obs = look(watch, app, tick - t0, url, view)
        url = obs.runtime_url
        if obs.runtime_answered and answered_at is None:
            answered_at = time.time()  # it answered by now (to within a look)
        runtime = watch.runtime() if obs.runtime_status == "running" else None
        if runtime is not None:
            if not seen_running:
                seen_running = True
                phase(f"runtime {runtime.name} running after {obs.t:.0f} s: waiting for the app to reach it")
            watch.runtime_running(runtime)
        decision = judge.add(obs)
        if decision is None and time.monotonic() - t0 >= budget:
            decision = judge.at_budget(budget)
        if decision is None:
            time.sleep(max(0.0, POLL - (time.monotonic() - tick)))
    watched = Watched(decision, judge.last, url, time.monotonic() - t0, answered_at)
    if decision.cause == Cause.STARTUP_GRACE and watched.answered_at is None:
        watched.answered_at = time_the_runtime(watch, url)
    return watched


def time_the_runtime(watch: Watch, url: str | None, limit: float = 90.0) -> float | None:
    """After a grace ran out: when the runtime really answers on its own port (epoch
    seconds), so the verdict can set it against the grace (the app has given up; the
    container runs)."""
    u = urlparse(url or "")
    t0 = time.monotonic()
    while u.port and time.monotonic() - t0 < limit:
        runtime = watch.runtime()
        if runtime is None or runtime.status != "running":
            return None
        if probe_from(runtime, "runtime", "127.0.0.1", inner_port(runtime, u.port)).tcp == "open":
            return time.time()
        time.sleep(1)
    return None
