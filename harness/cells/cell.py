"""One cell, start to end: start the app in its mode, wait for its API, create a
conversation, watch the runtime come up (or not) on the harness's own clock, decide, run
the tasks if it connected, and remove everything the cell made.

`CellCore` is what every entry point shares (the app container, the watch, the decision,
the evidence); `ApiCell` drives the app's API; headless.py drives V0's CLI entry point;
runner.py picks one per cell.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from harness import modes, progress
from harness.cells import admission
from harness.cells.diagnosis import Decision, Judge, Observation
from harness.errors import AdapterError, InputError
from harness.generations import Generation
from harness.host import cleanup, docker_host, firewall, hostload
from harness.host.containers import CellResources, app_container, free_port, tail
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from, proxy_env, proxy_for
from harness.matrix import Cell
from harness.model import (
    Cause,
    CellResult,
    Connect,
    Direction,
    Evidence,
    ImageSet,
    Source,
    TaskResult,
    Verdict,
    strip_ansi,
)
from harness.openhands import Adapter, LlmSettings, RuntimeState, adapter_for
from harness.tasks import CATALOG, Task, replay
from harness.tasks.llmwatch import LlmWatch
from harness.tasks.taskrun import LlmChoice, TaskRunner

POLL = 2.0
# The connect verdict needs no model; a key must be non-empty for the API to accept the
# conversation, and the base URL points at the app's own loopback where nothing listens.
NO_LLM = LlmSettings(model="openai/gpt-4o", api_key="oh-matrix-no-llm", base_url="http://127.0.0.1:9/v1")


@dataclass
class CellPlan:
    run_id: str
    cell: Cell
    images: ImageSet
    env: dict[str, str]  # matrix env + mode env + --app-env, in that order of precedence
    connect_budget: float
    app_budget: float
    message: str = "Say hello."
    secrets: frozenset[str] = field(default_factory=frozenset)
    tasks: list[str] = field(default_factory=list)  # task names, run once connected
    catalog: dict[str, Task] = field(default_factory=lambda: dict(CATALOG))  # the run's tasks by name
    llm: LlmChoice = field(default_factory=LlmChoice)
    task_budget: float = 120.0
    boot_slots: int = 1  # boots this machine admits at once (admission.py)
    alone: bool = False  # boot with the machine to itself: every slot held
    # ... held by the caller already (remedies.search holds them around a host change, so no
    # other cell boots while this machine is changed): the boot does not ask for them again
    slots_held: bool = False
    app_port: int | None = None  # publish the app here instead of a port the harness or Docker picks
    record_to: Path | None = None  # save the passing tasks' trajectories here (python -m harness.devtools.record)


def runtime_kwargs(user_value: str | None, lbl: dict[str, str], setting: str) -> str:
    """Labels on the runtimes OpenHands starts, through its own pass-through
    (`sandbox.docker_runtime_kwargs`, a dict handed to `containers.run`): lets a sweep find
    a runtime whose cell died. A user's own kwargs are kept; labels don't touch networking.
    `setting`: the generation's name for it (Generation.label_env), for the error."""
    kwargs: dict[str, Any] = {}
    if user_value:
        try:
            parsed = ast.literal_eval(user_value)
        except (ValueError, SyntaxError):
            parsed = None
        if not isinstance(parsed, dict):
            raise InputError(f"{setting}={user_value!r}: expected a Python dict literal, "
                             "as OpenHands reads it")
        kwargs = parsed
    kwargs["labels"] = {**(kwargs.get("labels") or {}), **lbl}
    return repr(kwargs)


def _published_on(runtime: Container, host_port: int) -> list[str]:
    """The host addresses a host port of the runtime is published on (HostIp '' = all)."""
    ports = (runtime.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return sorted({b.get("HostIp") or "0.0.0.0" for binds in ports.values() for b in (binds or [])
                   if int(b["HostPort"]) == host_port})


def _inner_port(runtime: Container, host_port: int) -> int:
    """The runtime's own port behind a published host port (V0 uses the same number; the
    V1 sandbox listens on 8000 behind a random host port)."""
    for inner, binds in ((runtime.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if binds and any(int(b["HostPort"]) == host_port for b in binds):
            return int(inner.split("/")[0])
    return host_port


def env_of(container: Container) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in (container.attrs.get("Config") or {}).get("Env") or [])


def where(container: Container, role: str) -> str:
    """A probe's vantage point with the network it sees: on the host network, /etc/hosts is a
    copy of the host's own file, not Docker's."""
    mode = (container.attrs.get("HostConfig") or {}).get("NetworkMode") or "default"
    note = ", /etc/hosts copied from the host" if mode == "host" else ""
    return f"{role} (network {mode}{note})"


def runtime_facts(runtime: Container) -> str:
    """State, exit code, OOM flag and where its ports are published, as the host sees it."""
    with contextlib.suppress(NotFound, APIError):
        runtime.reload()
    state = runtime.attrs.get("State") or {}
    net = runtime.attrs.get("HostConfig", {}).get("NetworkMode", "?")
    ports = (runtime.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    published = ", ".join(f"{inner} on {b['HostIp'] or '0.0.0.0'}:{b['HostPort']}"
                          for inner, binds in sorted(ports.items()) for b in (binds or []))
    return (f"{runtime.name}: {state.get('Status')}, exit code {state.get('ExitCode')}, "
            f"OOM {bool(state.get('OOMKilled'))}, network {net}, published: {published or 'nothing'}")


def _started_at(runtime: Container) -> float | None:
    """When the daemon started the container (epoch seconds), from its State.StartedAt."""
    stamp = str((runtime.attrs.get("State") or {}).get("StartedAt") or "")
    if not stamp or stamp.startswith("0001-"):
        return None
    head, _, frac = stamp.rstrip("Z").partition(".")
    try:
        started = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return started.timestamp() + (float(f"0.{frac[:6]}") if frac else 0.0)


def cpu_and_memory(container: Container | None) -> tuple[float, float]:
    """The container's CPU seconds since it started and its memory now, by the daemon's own
    accounting (a one-shot stats call); zeros for a container that is gone."""
    if container is None:
        return 0.0, 0.0
    try:
        stats = container.stats(stream=False, one_shot=True)
    except (NotFound, APIError):
        return 0.0, 0.0
    cpu = float(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0) / 1e9
    return cpu, float((stats.get("memory_stats") or {}).get("usage") or 0)


def daemon_events(client: docker.DockerClient, name: str, since: float) -> str:
    """What the daemon's event stream says about a container since `since`: create, start,
    die (with its exit code), oom, kill..., in order."""
    try:
        events = list(client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                    filters={"container": name, "type": "container"}))
    except (APIError, NotFound):
        return ""
    parts = []
    for e in events:
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        extra = f" exitCode={attrs['exitCode']}" if "exitCode" in attrs else ""
        when = dt.datetime.fromtimestamp(e.get("time", 0), dt.UTC).strftime("%H:%M:%S")
        parts.append(f"{when} {e.get('Action') or e.get('status')}{extra}")
    return ", ".join(parts)


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


class CellCore:
    """The app container, the watch and the decision, shared by the entry points."""

    def __init__(self, plan: CellPlan) -> None:
        self.plan = plan
        self.gen: Generation = plan.cell.target.generation
        self.mode: modes.ModeSpec = plan.cell.mode.spec
        self.client = docker_host.client()
        self.labels = cleanup.labels(plan.run_id, plan.cell.id)
        self.name = f"{cleanup.name_prefix(plan.run_id)}-{plan.cell.id}".replace(".", "_")
        self.resources = CellResources(self.client, self.labels, self.name)
        self.networks: dict[str, str] = {}  # the mode's networks -> the cell's own
        self.launched = False
        self.boot_start: hostload.CpuSample | None = None  # the machine when this boot began
        self.app_cpu_at_api = 0.0  # the app's CPU seconds when its API first answered
        self.runtime_answered: float | None = None  # epoch seconds: first look where the runtime answered
        self.conversation_at = 0.0  # epoch seconds: when the conversation was created
        self.app_env: dict[str, str] = {}
        self.runtime_name: str | None = None
        self.firewall_read = False
        self.firewall_rules: list[firewall.Rule] | None = None
        self.default_bridge = "docker0"
        self.bridges: dict[str, str] = {}  # container id -> the bridge its packets to the host arrive on
        self.result = CellResult(
            id=plan.cell.id, tag=plan.cell.target.tag, mode=plan.cell.mode.name, api=plan.images.api,
            connect=Connect(verdict=Verdict.SKIP, reason="not run"), entrypoint=plan.cell.entrypoint,
            resolved_version=plan.images.resolved_version, backend=plan.images.backend,
            app_image=plan.images.app_image, runtime_image=plan.images.runtime_image,
            deployment=plan.cell.mode.deployment.origin if plan.cell.mode.deployment else None,
        )

    # -- set-up ---------------------------------------------------------------------------

    def launch(self) -> modes.AppLaunch:
        p = self.plan
        env = {**p.images.app_env, **p.env}
        if self.gen.runtime_image_env and p.images.runtime_image:  # V0 is told its runtime image, as documented
            env = {self.gen.runtime_image_env: p.images.runtime_image, **env}
        if not self.launched:  # the cell's networks, and the runtimes' removal after the app, before it
            self.launched = True
            self.networks = {n: self.resources.network("" if n == modes.OWN_NETWORK else n)
                             for n in self.mode.networks}
            self.resources.on_close(self._remove_runtimes)
        # Docker picks the published port unless the app must know it before it starts.
        chosen = self.mode.network == "host" or self.gen.callback or self.mode.places_ports
        host_port = p.app_port or (free_port() if chosen else None)
        launch = self.mode.launch(self.gen, image=p.images.app_image, env=env, host_port=host_port,
                                  networks=self.networks, site=self)
        self.result.notes += [n for n in launch.placement if n not in self.result.notes]
        self.result.docker_run = launch.docker_run(p.secrets)
        self.result.app_env = dict(launch.env)  # redacted by the caller (secrets.py)
        return launch

    def start_app(self, launch: modes.AppLaunch, stack: contextlib.ExitStack | None = None) -> Container:
        env = launch.container_env()  # what the user sets wins over the harness's own
        if self.gen.label_env:  # OpenHands passes the cell's labels on to the runtimes it starts
            # the user's value, with our labels
            merged = runtime_kwargs(env.get(self.gen.label_env), self.labels, self.gen.label_env)
            launch = replace(launch, env={**launch.env, self.gen.label_env: merged})
            env = launch.container_env()
        self.app_env = env
        app = app_container(launch.image, launch.options(placed=True, name=self.name), launch.argv(), self.labels)
        container = (stack or self.resources.stack).enter_context(app).get_wrapped_container()
        # The process's whole environment: the image's ENV (V0's SANDBOX_LOCAL_RUNTIME_URL is
        # there) under what was passed, so a URL formula read before its log line is right.
        self.app_env = {**env_of(container), **env}
        self.result.socket_mounted_in = [self.name]
        self.phase(f"app {self.name} started from {launch.image}")
        return container

    def free_port(self) -> int:  # modes.CellSite
        return free_port()

    def scratch(self, why: str) -> str:  # modes.CellSite
        return self.resources.scratch(why)

    def phase(self, text: str) -> None:
        """A phase line for the user watching the run (progress.py)."""
        progress.phase(self.plan.cell.id, text)

    def app_url(self, launch: modes.AppLaunch, app: Container) -> str:
        """Where the harness reaches the app: the host port chosen, or the one Docker chose."""
        if launch.host_port is not None:
            return f"http://127.0.0.1:{launch.host_port}"
        app.reload()
        binds = (app.attrs.get("NetworkSettings") or {}).get("Ports", {}).get(f"{launch.listen_port}/tcp") or []
        return f"http://127.0.0.1:{binds[0]['HostPort']}"

    def wait_api(self, container: Container, adapter: Adapter) -> Decision | None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.plan.app_budget:
            container.reload()
            if container.status not in ("running", "created"):
                code = container.attrs["State"].get("ExitCode")
                return Decision(Verdict.FAIL, Cause.APP_EXITED,
                                f"app container {container.status} with exit code {code} before its API answered")
            if adapter.healthy():
                self.result.app_seconds = round(time.monotonic() - t0, 1)
                self.phase(f"app's API up after {self.result.app_seconds} s")
                self.app_cpu_at_api = cpu_and_memory(container)[0]
                return None
            time.sleep(1)
        return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED,
                        f"the app's API did not answer within {self.plan.app_budget:.0f} s")

    # -- watching -------------------------------------------------------------------------

    def container(self, name: str | None) -> Container | None:
        if not name:
            return None
        try:
            return self.client.containers.get(name)
        except NotFound:
            return None

    def observe(self, watch: Watch, app: Container, t0: float, url: str | None) -> tuple[Observation, str | None]:
        app.reload()
        o = Observation(t=time.monotonic() - t0, app_status=app.status, app_exit=app.attrs["State"].get("ExitCode"))
        runtime = watch.runtime()
        if runtime is not None:
            state = runtime.attrs["State"]
            o.runtime_status, o.runtime_exit = runtime.status, state.get("ExitCode")
            o.runtime_oom = bool(state.get("OOMKilled"))
            o.runtime_error = str(state.get("Error") or "")
            o.runtime_restarts = int(runtime.attrs.get("RestartCount") or 0)
        if o.app_status == "running":
            try:
                o.state = watch.state()
            except AdapterError as e:
                o.api_error = str(e)[:300]
            logs = strip_ansi(tail(app, 400))
            url = url or watch.runtime_url(logs, runtime)
            o.app_failure = watch.runtime_failure(logs)
            o.proxy = proxy_env(app)
        if o.state is None:  # a headless process may be done already: its log outlives it
            with contextlib.suppress(AdapterError):
                o.state = watch.state()
        runtime_up = runtime is not None and o.runtime_status == "running"
        if o.state and o.state.ready and self.runtime_answered is None:
            self.runtime_answered = time.time()  # it answered the app by now (to within a look)
        if o.state and o.state.ready and runtime is not None and runtime_up:
            o.webhook_probes = [self._probe_url(runtime, f"sandbox {label}", target)
                                for label, target in watch.callbacks(runtime)]
        if o.app_status != "running" or (o.state and o.state.ready):
            return o, url
        u = urlparse(url or "")
        if u.hostname and u.port:
            o.app_probe = probe_from(app, where(app, "app"), u.hostname, u.port)
            if runtime is not None:
                o.published_on = _published_on(runtime, u.port)
            if runtime is not None and runtime_up:
                o.self_probe = probe_from(runtime, "runtime", "127.0.0.1", _inner_port(runtime, u.port))
                if o.self_probe.tcp == "open" and self.runtime_answered is None:
                    self.runtime_answered = time.time()
            if (via := proxy_for(o.proxy)) is not None:
                o.proxy_probe = probe_from(app, "app via its proxy", u.hostname, u.port, via=via)
        callback = watch.callback_target()
        if callback and runtime is not None and runtime_up:
            o.callback_probe = probe_from(runtime, where(runtime, "sandbox"), callback[0], callback[1])
            o.callback_published_on = _published_on(app, callback[1])
        o.app_rules = self._rules_on(app, o.app_probe)
        o.callback_rules = self._rules_on(runtime, o.callback_probe) if runtime is not None else None
        return o, url

    def _rules_on(self, caller: Container, p: NetProbe | None) -> list[firewall.Rule] | None:
        """The host firewall's rules that meet a probe that did not get through (read once per
        cell, and only then: a look at the rules is a subprocess each)."""
        if p is None or p.tcp not in ("refused", "unreachable", "timeout"):
            return None
        if not self.firewall_read:  # once per cell: the rules, and the default bridge's name
            self.firewall_read = True
            self.firewall_rules = None if docker_host.remote() else firewall.rules()  # a remote daemon's live there
            self.default_bridge = docker_host.bridge_options(self.client).get("name", "docker0")
        if caller.id not in self.bridges:
            self.bridges[caller.id] = self._bridge(caller)
        bridge = self.bridges[caller.id]
        # Only the default bridge's (and the host network's) connects to the host meet INPUT:
        # Docker NATs other networks' to a published port, through FORWARD, which is not read.
        if self.firewall_rules is None or bridge not in ("lo", self.default_bridge):
            return None
        return firewall.matching(self.firewall_rules, bridge, p.port)

    def _bridge(self, c: Container) -> str:
        """The interface a container's packets to the host arrive on: its network's bridge."""
        nets: dict[str, dict[str, Any]] = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        name, info = next(iter(nets.items()), ("host", dict[str, Any]()))
        if name == "host" or (c.attrs.get("HostConfig") or {}).get("NetworkMode") == "host":
            return "lo"
        try:
            options = self.client.networks.get(info.get("NetworkID") or name).attrs.get("Options") or {}
        except docker.errors.DockerException:
            options = {}
        net_id = str(info.get("NetworkID") or "")
        return str(options.get("com.docker.network.bridge.name") or f"br-{net_id[:12]}")

    @staticmethod
    def _probe_url(container: Container, role: str, url: str) -> NetProbe:
        u = urlparse(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        return probe_from(container, where(container, role), u.hostname or "", port, u.path or "/")

    def watch(self, watch: Watch, app: Container) -> None:
        judge, url, t0 = Judge(), None, time.monotonic()
        decision: Decision | None = None
        seen_running = False
        while decision is None:
            tick = time.monotonic()
            obs, url = self.observe(watch, app, t0, url)
            runtime = watch.runtime() if obs.runtime_status == "running" else None
            if runtime is not None:
                if not seen_running:
                    seen_running = True
                    self.phase(f"runtime {runtime.name} running after {obs.t:.0f} s: waiting for the app to reach it")
                watch.runtime_running(runtime)
            decision = judge.add(obs)
            if decision is None and time.monotonic() - t0 >= self.plan.connect_budget:
                decision = judge.at_budget(self.plan.connect_budget)
            if decision is None:
                time.sleep(max(0.0, POLL - (time.monotonic() - tick)))
        self.result.connect.runtime_url = url
        seconds = time.monotonic() - t0
        if decision.cause == Cause.STARTUP_GRACE:
            self._time_the_runtime(watch, url)
        self.decide(decision, seconds, app, judge.last, watch)

    def _time_the_runtime(self, watch: Watch, url: str | None, limit: float = 90.0) -> None:
        """After a grace ran out: how long the runtime really takes to answer on its own port,
        so the verdict can set it against the grace (the app has given up; the container runs)."""
        u = urlparse(url or "")
        t0 = time.monotonic()
        while self.runtime_answered is None and u.port and time.monotonic() - t0 < limit:
            runtime = watch.runtime()
            if runtime is None or runtime.status != "running":
                return
            if probe_from(runtime, "runtime", "127.0.0.1", _inner_port(runtime, u.port)).tcp == "open":
                self.runtime_answered = time.time()
                return
            time.sleep(1)

    def decide(self, d: Decision, seconds: float | None, app: Container | None = None,
               obs: Observation | None = None, watch: Watch | None = None) -> None:
        evidence = [Evidence(source=Source.HARNESS, text=d.why)]
        if obs is not None:
            if obs.state:
                evidence.append(Evidence(source=Source.API, text=f"app reports {obs.state.status}"))
            for probe in (obs.app_probe, obs.self_probe, obs.callback_probe, obs.proxy_probe, *obs.webhook_probes):
                if probe:
                    evidence.append(Evidence(source=Source.PROBE, text=probe.line()))
            if obs.proxy:
                evidence.append(Evidence(source=Source.APP, text="proxy env: " + ", ".join(
                    f"{k}={v}" for k, v in obs.proxy.items())))
        if d.verdict != Verdict.PASS:
            runtime = watch.runtime() if watch is not None else None
            if runtime is not None:
                evidence.append(Evidence(source=Source.RUNTIME, text=runtime_facts(runtime)))
                if d.direction == Direction.CALLBACK and watch is not None:
                    evidence += [Evidence(source=Source.RUNTIME_LOG, text=line)
                                 for line in watch.callback_story(runtime)]
                if events := daemon_events(self.client, str(runtime.name), self.conversation_at or time.time() - 300):
                    evidence.append(Evidence(source=Source.DAEMON, text=f"{runtime.name}: {events}"))
                evidence.append(Evidence(source=Source.RUNTIME_LOG, text=tail(runtime)))
            if app is not None:
                evidence.append(Evidence(source=Source.APP_LOG, text=strip_ansi(tail(app))))
        if d.verdict == Verdict.PASS and watch is not None and app is not None:
            self._note_networks(app, watch.runtime())
        after = f" after {seconds:.1f} s" if seconds is not None else ""
        self.phase(f"connect: {d.verdict}{' ' + d.cause if d.cause else ''}{after}"
                   + (f" ({d.why[:120]})" if d.verdict != Verdict.PASS else ""))
        self.result.connect = Connect(verdict=d.verdict, cause=d.cause,
                                      seconds=round(seconds, 1) if seconds is not None else None,
                                      runtime_url=self.result.connect.runtime_url, evidence=evidence,
                                      direction=d.direction, rerun=d.rerun)

    def _note_networks(self, app: Container, runtime: Container | None) -> None:
        """Where the runtime ran when it is not where the app is (a custom network holds only
        the app: neither generation has a setting to put its runtime there), and how the app
        reached it, so a user knows what the pass means."""
        if runtime is None:
            return
        ours = (app.attrs.get("HostConfig") or {}).get("NetworkMode")
        theirs = (runtime.attrs.get("HostConfig") or {}).get("NetworkMode")
        if ours != theirs:
            self.result.notes.append(f"the app ran on network {ours}, its runtime {runtime.name} on {theirs}; the "
                                     f"app reached it at {self.result.connect.runtime_url or '?'}")

    def error(self, cause: Cause, why: str) -> None:
        self.decide(Decision(Verdict.ERROR, cause, why), None)

    # -- the runtimes OpenHands starts ----------------------------------------------------

    def track_runtime(self, name: str) -> None:
        """A runtime OpenHands will create for this cell: named in the run registry at once,
        so a sweep after a crash still finds it (V1 sandboxes carry no label of ours)."""
        self.runtime_name = name
        self.result.runtime_container = name
        cleanup.register(self.plan.run_id, name)
        self.phase(f"conversation created: its runtime {name} is starting")

    def remove_runtime(self, name: str | None) -> None:
        if name:
            if (c := self.container(name)) is not None:
                cleanup.remove_container(c)
            cleanup.unregister(self.plan.run_id, name)

    def _remove_runtimes(self) -> None:
        """After the app: every runtime it started, by label (V0 passes ours on) and by name."""
        for c in self.client.containers.list(all=True, filters={"label": f"{cleanup.CELL_LABEL}={self.plan.cell.id}"}):
            if c.labels.get(cleanup.RUN_LABEL) == self.plan.run_id and c.labels.get(cleanup.ROLE_LABEL) != "sidecar":
                cleanup.remove_container(c)
        self.remove_runtime(self.runtime_name)

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        """Cells whose runtime binds fixed host ports (the V1 sandbox on the host network)
        run one at a time on this machine, across xdist workers and concurrent runs alike."""
        if not self.mode.must_run_alone(self.gen):
            return contextlib.nullcontext()
        from filelock import FileLock

        from harness.paths import cache_root

        ports = ", ".join(str(p) for p in self.gen.host_network_ports)
        self.result.notes.append(f"serialized: the {self.gen.name.upper()} runtime binds fixed host ports ({ports})")
        locks = cache_root() / "locks"
        locks.mkdir(exist_ok=True)
        return FileLock(str(locks / f"{self.gen.name}-host-network.lock"))

    @contextlib.contextmanager
    def booting(self) -> Iterator[None]:
        """The boot phase (app, then runtime, up to the connect verdict) in an admission slot,
        with what the machine did meanwhile recorded against the release's own clock."""
        waiting = "waiting for every boot slot (this boot runs alone)" if self.plan.alone else \
            f"waiting for a boot slot ({self.plan.boot_slots} on this machine)"
        held = contextlib.nullcontext(0.0) if self.plan.slots_held else \
            admission.slot(self.plan.boot_slots, self.plan.alone, lambda: self.phase(waiting))
        with held as waited:
            self.result.boot.slot_wait, self.result.boot.slots = waited, self.plan.boot_slots
            self.result.boot.alone = self.plan.alone
            self.boot_start = hostload.sample()
            try:
                yield
            finally:
                self.measure_boot()

    def measure_boot(self) -> None:
        """The boot against the release's clock and the machine's load; a passing boot's CPU and
        memory teach admission control what a boot needs here."""
        b, runtime = self.result.boot, self.container(self.runtime_name)
        b.grace = self.gen.grace(self.app_env)
        if runtime is not None and self.runtime_answered is not None and (started := _started_at(runtime)):
            b.runtime_seconds = round(self.runtime_answered - started, 1)
        if self.boot_start is None:
            return
        end = hostload.sample()
        busy, steal = hostload.busy_cores(self.boot_start, end)
        app_cpu, app_memory = cpu_and_memory(self.container(self.name))
        runtime_cpu, runtime_memory = cpu_and_memory(runtime)
        wall = max(end.at - self.boot_start.at, 1e-6)
        own = (app_cpu + runtime_cpu) / wall
        b.cpu_cores, b.host_busy_cores = round(own, 2), round(busy, 2)
        b.other_cores, b.steal_percent = round(max(busy - own, 0.0), 2), round(steal, 1)
        b.load = hostload.load()
        app_phase = self.app_cpu_at_api / max(self.result.app_seconds or 0.0, 1.0)
        connect_phase = ((app_cpu - self.app_cpu_at_api) + runtime_cpu) / max(self.result.connect.seconds or 0.0, 1.0)
        if self.result.connect.verdict == Verdict.PASS and self.result.app_seconds and self.result.connect.seconds:
            admission.record(self.gen.name, max(app_phase, connect_phase), app_memory + runtime_memory)

    def run(self) -> CellResult:
        try:
            with self.exclusive(), self.resources:
                self.body()
        except docker.errors.ImageNotFound as e:
            self.error(Cause.IMAGE_UNAVAILABLE, str(e)[:300])
        except docker.errors.DockerException as e:
            self.error(Cause.HARNESS_ERROR, f"Docker: {str(e)[:300]}")
        return self.result

    def body(self) -> None:
        raise NotImplementedError


class ApiWatch:
    """The connect watch through the app's API: one conversation, its runtime by name."""

    def __init__(self, core: CellCore, adapter: Adapter, conversation: str, on_running: Any) -> None:
        self.core, self.adapter, self.conversation, self.on_running = core, adapter, conversation, on_running

    def runtime(self) -> Container | None:
        return self.core.container(self.core.runtime_name)

    def state(self) -> RuntimeState:
        return self.adapter.runtime_state(self.conversation)

    def runtime_url(self, app_logs: str, runtime: Container | None) -> str | None:
        return self.adapter.runtime_url(app_logs, self.core.app_env, runtime.attrs if runtime is not None else None)

    def callback_target(self) -> tuple[str, int] | None:
        return self.adapter.callback_target(self.core.app_env)

    def runtime_failure(self, app_logs: str) -> str | None:
        return self.adapter.runtime_failure(app_logs)

    def callbacks(self, runtime: Container) -> list[tuple[str, str]]:
        return self.adapter.callback_urls(env_of(runtime))

    def callback_story(self, runtime: Container) -> list[str]:
        story = self.adapter.callback_log(strip_ansi(tail(runtime, 400)))
        sandbox, app = self.adapter.event_counts(self.conversation)
        if sandbox is not None or app is not None:
            story.append(f"events of the conversation: {sandbox if sandbox is not None else '?'} in the sandbox, "
                         f"{app if app is not None else '?'} received by the app")
        return story

    def runtime_running(self, runtime: Container) -> None:
        self.on_running(runtime)


class ApiCell(CellCore):
    """The app server's API: the documented deployment."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__(plan)
        self.runner: TaskRunner | None = None
        self.task_error: str | None = None  # why the tasks cannot run although connect may pass

    def body(self) -> None:
        with self.booting():
            connected = self.connect()
        if connected is not None and self.result.connect.verdict == Verdict.PASS and self.runner is not None:
            self._run_tasks(*connected)

    def connect(self) -> tuple[str, ApiWatch] | None:
        """Start the app, create a conversation, watch its runtime come up: the boot phase."""
        launch = self.launch()
        app = self.start_app(launch)
        adapter = adapter_for(self.gen, self.app_url(launch, app))
        self.resources.on_close(adapter.close)
        early = self.wait_api(app, adapter)
        if early:
            self.decide(early, None, app)
            return None
        llm = self._prepare_tasks(adapter, app)
        try:
            adapter.store_settings(llm)
            self.conversation_at = time.time()
            conversation = adapter.create_conversation(self.plan.message)
            self.track_runtime(adapter.runtime_container_name(conversation))
        except AdapterError as e:
            self.decide(Decision(Verdict.FAIL, Cause.API_ERROR, str(e)[:400]), None, app)
            return None
        watch = ApiWatch(self, adapter, conversation, self._runtime_running)
        self.watch(watch, app)
        return conversation, watch

    def _prepare_tasks(self, adapter: Adapter, app: Container) -> LlmSettings:
        """The LLM settings for the conversation: NO_LLM for a connect-only cell, else the
        scripted LLM (started at once when the app calls it) or the user's model."""
        p = self.plan
        if not p.tasks:
            return NO_LLM
        self.runner = TaskRunner(self.resources, adapter, self.gen, p.images.app_image, self.name,
                                 p.tasks, p.llm, p.task_budget, free_port(), free_port(), catalog=p.catalog,
                                 images=p.images)
        self.resources.on_close(self.runner.close)  # sidecars go before the app whose namespace they share
        if self.gen.llm_caller == "app":
            self._start_llm(app.id)
        return self.runner.settings()

    def _runtime_running(self, runtime: Container) -> None:
        if (self.runner and self.gen.llm_caller == "sandbox" and self.runner.llm_sidecar is None
                and not self.task_error):
            # The sandbox calls the LLM: the LLM joins it as soon as it runs.
            self._start_llm(runtime.id)

    def _start_llm(self, caller: str | None) -> None:
        assert self.runner is not None
        try:
            self.runner.start_llm(str(caller))
        except (docker.errors.DockerException, TimeoutError) as e:
            self.task_error = f"the scripted LLM did not start: {str(e)[:300]}"

    def _run_tasks(self, conversation: str, watch: ApiWatch) -> None:
        assert self.runner is not None
        runtime = watch.runtime()
        if self.task_error or runtime is None:
            why = self.task_error or "the runtime container is gone"
            r = self.runner
            self.result.tasks = [r.result(n, Verdict.SKIP, detail=skip) if (skip := r.skip_reason(n))
                                 else r.result(n, Verdict.ERROR, detail=why) for n in self.plan.tasks]
            return
        if self.plan.llm.replay:
            self.result.tasks = [self._replay(watch.adapter, name) for name in self.plan.tasks]
            return
        if self.plan.llm.real is not None:  # the user's model: a dead endpoint is a cause in seconds
            caller = runtime if self.gen.llm_caller == "sandbox" else self.container(self.name)
            if caller is not None:
                self.runner.llm_watch = LlmWatch(caller, self.plan.llm.real.base_url, log_of=caller)
        self.result.tasks = self.runner.run(conversation, runtime, self.phase)
        if self.plan.record_to is not None:  # python -m harness.devtools.record
            self._record(watch.adapter.events(conversation))

    def _record(self, events: list[dict[str, Any]]) -> None:
        assert self.runner is not None
        for task in self.result.tasks:
            recording = replay.extract(events, task.name, self.runner.where(name=task.name))
            if task.verdict == Verdict.PASS and recording is not None and self.plan.record_to is not None:
                replay.save(recording, self.plan.record_to)

    def _replay(self, adapter: Adapter, name: str) -> TaskResult:
        """One built-in task replayed from its recording in a conversation of its own, with a
        runtime of its own, judged by the same effect check; the scripted LLM, the app's LLM
        here, has no scripts and records any call (there should be none)."""
        runner = self.runner
        assert runner is not None
        if self.gen.replay_skip:
            return runner.result(name, Verdict.SKIP, detail=self.gen.replay_skip)
        recording = replay.load(name, runner.nonce, runner.git_port)
        if recording is None:
            return runner.result(name, Verdict.SKIP, detail=f"no recorded trajectory of {name} (only the built-in "
                                                            "tasks are recorded, in harness/tasks/catalogs/replay)")
        runner.git = None  # each replay has a runtime of its own: its git server too
        t0 = time.monotonic()
        try:
            runner.conversation = adapter.replay_conversation(recording.events)
            name_of_runtime = adapter.runtime_container_name(runner.conversation)
            cleanup.register(self.plan.run_id, name_of_runtime)
            runtime = self._wait_running(name_of_runtime, runner.budget_of(name))
            runner.prepare(name, runtime)
        except (AdapterError, docker.errors.DockerException, RuntimeError, TimeoutError) as e:
            return runner.result(name, Verdict.ERROR, detail=f"could not replay the task: {str(e)[:300]}")
        turn, api_error = runner._wait_turn(runner.key(name), runner.budget_of(name))
        try:
            return runner.verdict(name, runtime, turn, time.monotonic() - t0,
                                  runner._evidence(turn, api_error, name))
        finally:
            self.remove_runtime(name_of_runtime)

    def _wait_running(self, name: str, budget: float) -> Container:
        t0 = time.monotonic()
        while time.monotonic() - t0 < budget:
            runtime = self.container(name)
            if runtime is not None and runtime.status == "running":
                return runtime
            time.sleep(1)
        raise TimeoutError(f"the replay's runtime {name} was not running within {budget:.0f} s")
