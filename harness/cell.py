"""One cell, start to end: start the app in its mode, wait for its API, create a
conversation, watch the runtime come up (or not) on the harness's own clock, decide,
and remove everything the cell made."""

from __future__ import annotations

import ast
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import docker
import httpx
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from filelock import FileLock
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from harness import cleanup, docker_host, modes
from harness.diagnosis import Decision, Judge, Observation
from harness.errors import ApiError, InputError
from harness.images.model import ImageSet
from harness.matrix import Cell
from harness.openhands import Adapter, LlmSettings, adapter_for
from harness.paths import cache_root
from harness.probes import probe_from, proxy_env
from harness.results import CellResult, Connect, Evidence, strip_ansi
from harness.taskrun import LlmChoice, TaskRunner

# Ryuk's image cannot be pulled where there is no registry, and its per-process reaper
# adds nothing to the harness's own label sweep (cleanup.py), which also survives SIGKILL.
testcontainers_config.ryuk_disabled = True

POLL = 2.0
LOG_TAIL = 20
# The connect verdict needs no model; a key must be non-empty for the API to accept the
# conversation, and the base URL points at the app's own loopback where nothing listens.
NO_LLM = LlmSettings(model="openai/gpt-4o", api_key="oh-matrix-no-llm",
                     base_url="http://127.0.0.1:9/v1")


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
    tasks: list[str] = field(default_factory=list)  # catalog names, run once connected
    llm: LlmChoice = field(default_factory=LlmChoice)
    task_budget: float = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runtime_kwargs(user_value: str | None, lbl: dict[str, str]) -> str:
    """Labels on the runtimes OpenHands starts, through its own pass-through
    (`sandbox.docker_runtime_kwargs`, a dict handed to `containers.run`): lets a sweep find
    a runtime whose cell died. A user's own kwargs are kept; labels don't touch networking."""
    kwargs: dict[str, Any] = {}
    if user_value:
        try:
            parsed = ast.literal_eval(user_value)
        except (ValueError, SyntaxError):
            parsed = None
        if not isinstance(parsed, dict):
            raise InputError(f"SANDBOX_DOCKER_RUNTIME_KWARGS={user_value!r}: expected a Python dict literal, "
                             "as OpenHands reads it")
        kwargs = parsed
    kwargs["labels"] = {**(kwargs.get("labels") or {}), **lbl}
    return repr(kwargs)


def _tail(container: docker.models.containers.Container | None, n: int = LOG_TAIL) -> str:
    if container is None:
        return ""
    try:
        return str(container.logs(tail=n).decode(errors="replace")).rstrip()
    except (NotFound, APIError):
        return "(container gone)"


def _published_on(runtime: docker.models.containers.Container, host_port: int) -> list[str]:
    """The host addresses a host port of the runtime is published on (HostIp '' = all)."""
    ports = (runtime.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return sorted({b.get("HostIp") or "0.0.0.0" for binds in ports.values() for b in (binds or [])
                   if int(b["HostPort"]) == host_port})


def _runtime_facts(runtime: docker.models.containers.Container) -> str:
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


class CellRun:
    def __init__(self, plan: CellPlan) -> None:
        self.plan = plan
        self.client = docker_host.client()
        self.labels = cleanup.labels(plan.run_id, plan.cell.id)
        self.name = f"oh-matrix-{plan.run_id[:8]}-{plan.cell.id}".replace(".", "_")
        self.app: DockerContainer | None = None
        self.network: Network | None = None
        self.conversation: str | None = None
        self.app_env: dict[str, str] = {}
        self.runtime_name: str | None = None
        self.runner: TaskRunner | None = None
        self.task_error: str | None = None  # why the tasks cannot run although connect may pass
        self.result = CellResult(
            id=plan.cell.id, tag=plan.cell.target.tag, mode=plan.cell.mode.name,
            api=plan.images.api, connect=Connect("skip", reason="not run"), entrypoint=plan.cell.entrypoint,
            resolved_version=plan.images.resolved_version, backend=plan.images.backend,
            app_image=plan.images.app_image, runtime_image=plan.images.runtime_image,
        )

    # -- set-up ---------------------------------------------------------------------------

    def _launch(self) -> modes.AppLaunch:
        p = self.plan
        # V0 is told its runtime image as the documented command does; V1 asks for the
        # agent-server image by its own default name, which the backend provides.
        env = dict(p.env)
        if p.images.api == "v0":
            env = {"SANDBOX_RUNTIME_CONTAINER_IMAGE": p.images.runtime_image, **env}
        network = None
        if p.cell.mode.name == "custom-network":
            self.network = Network(docker_network_kw={"labels": self.labels, "driver": "bridge"})
            self.network.name = self.name
            self.network.create()
            network = self.network.name
        launch = modes.recipe(p.cell.mode.name, image=p.images.app_image, api=p.images.api,
                              env=env, host_port=free_port(), network=network)
        self.result.docker_run = launch.docker_run(p.secrets)
        self.result.app_env = dict(launch.env)  # redacted by the caller (secrets.py)
        return launch

    def _start_app(self, launch: modes.AppLaunch) -> docker.models.containers.Container:
        env = {**launch.harness_env, **launch.env}  # what the user sets wins
        if self.plan.images.api == "v0":
            env["SANDBOX_DOCKER_RUNTIME_KWARGS"] = runtime_kwargs(
                env.get("SANDBOX_DOCKER_RUNTIME_KWARGS"), self.labels)
        self.app_env = env
        app = DockerContainer(launch.image).with_name(self.name).with_envs(**env)
        app.with_volume_mapping(modes.docker_socket(), "/var/run/docker.sock", "rw")
        command = launch.headless or launch.command
        if command:
            app.with_command(command)
        kwargs: dict[str, Any] = {"labels": self.labels}
        if launch.network_mode:
            kwargs["network_mode"] = launch.network_mode
        elif launch.headless:
            pass  # no API to publish
        else:
            # Loopback only unless the release needs callbacks (see AppLaunch.publish_all).
            # (with_bind_ports has no host-interface form; docker-py takes (ip, port).)
            address = "0.0.0.0" if launch.publish_all else "127.0.0.1"
            app.ports[f"{launch.listen_port}/tcp"] = (address, launch.host_port)  # type: ignore[assignment]
        if launch.network:
            kwargs["network"] = launch.network
        if launch.extra_hosts:
            kwargs["extra_hosts"] = launch.extra_hosts
        app.with_kwargs(**kwargs)  # one call: with_kwargs replaces, it does not merge
        self.app = app
        app.start()
        self.result.socket_mounted_in = [self.name]
        return app.get_wrapped_container()

    def _wait_api(self, container: docker.models.containers.Container, adapter: Adapter,
                  base_url: str) -> Decision | None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.plan.app_budget:
            container.reload()
            if container.status not in ("running", "created"):
                code = container.attrs["State"].get("ExitCode")
                return Decision("fail", "app-exited",
                                f"app container {container.status} with exit code {code} before its API answered")
            try:
                r = httpx.get(base_url + adapter.health_path, timeout=3, trust_env=False)
                if r.status_code < 500:
                    self.result.app_seconds = round(time.monotonic() - t0, 1)
                    return None
            except httpx.HTTPError:
                pass
            time.sleep(1)
        return Decision("fail", "budget-exceeded",
                        f"the app's API did not answer within {self.plan.app_budget:.0f} s")

    # -- watching -------------------------------------------------------------------------

    def _runtime(self, adapter: Adapter) -> docker.models.containers.Container | None:
        try:
            return self.client.containers.get(adapter.runtime_container_name(str(self.conversation)))
        except NotFound:
            return None

    def _runtime_url(self, adapter: Adapter, app: docker.models.containers.Container,
                     runtime: docker.models.containers.Container | None) -> str | None:
        logs = strip_ansi(_tail(app, 400))
        return adapter.runtime_url(logs, self.app_env, runtime.attrs if runtime is not None else None)

    def _observe(self, adapter: Adapter, app: docker.models.containers.Container,
                 t0: float, url: str | None) -> tuple[Observation, str | None]:
        app.reload()
        o = Observation(t=time.monotonic() - t0, app_status=app.status,
                        app_exit=app.attrs["State"].get("ExitCode"))
        runtime = self._runtime(adapter)
        if runtime is not None:
            state = runtime.attrs["State"]
            o.runtime_status, o.runtime_exit = runtime.status, state.get("ExitCode")
            o.runtime_oom = bool(state.get("OOMKilled"))
        if o.app_status == "running":
            try:
                o.state = adapter.runtime_state(str(self.conversation))
            except (ApiError, httpx.HTTPError) as e:
                o.api_error = str(e)[:300]
            url = url or self._runtime_url(adapter, app, runtime)
            o.proxy = proxy_env(app)
        if o.app_status != "running" or (o.state and o.state.ready):
            return o, url
        runtime_up = runtime is not None and o.runtime_status == "running"
        u = urlparse(url or "")
        if u.hostname and u.port:
            o.app_probe = probe_from(app, "app", u.hostname, u.port)
            if runtime is not None:
                o.published_on = _published_on(runtime, u.port)
            if runtime_up:
                inner = self._inner_port(runtime, u.port)
                o.self_probe = probe_from(runtime, "runtime", "127.0.0.1", inner)
        callback = adapter.callback_target(self.app_env)
        if callback and runtime_up:
            o.callback_probe = probe_from(runtime, "sandbox", callback[0], callback[1])
        return o, url

    @staticmethod
    def _inner_port(runtime: docker.models.containers.Container, host_port: int) -> int:
        """The runtime's own port behind a published host port (V0 uses the same number;
        the V1 sandbox listens on 8000 behind a random host port)."""
        for inner, binds in ((runtime.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
            if binds and any(int(b["HostPort"]) == host_port for b in binds):
                return int(inner.split("/")[0])
        return host_port

    # -- the whole cell -------------------------------------------------------------------

    def run(self) -> CellResult:
        try:
            with self._exclusive():
                self._run()
        except ImageNotFound as e:
            self._decide(Decision("error", "image-unavailable", str(e)[:300]), None)
        except DockerException as e:
            self._decide(Decision("error", "harness-error", f"Docker: {str(e)[:300]}"), None)
        finally:
            self.teardown()
        return self.result

    def _exclusive(self) -> contextlib.AbstractContextManager[object]:
        """V1 host-network sandboxes bind fixed ports (8000-8012) on the host: one at a
        time on this machine, across xdist workers and concurrent runs alike."""
        if self.plan.images.api == "v1" and self.plan.cell.mode.name == "host":
            self.result.notes.append("serialized: the V1 host-network sandbox uses fixed ports 8000-8012")
            locks = cache_root() / "locks"
            locks.mkdir(exist_ok=True)
            return FileLock(str(locks / "v1-host-network.lock"))
        return contextlib.nullcontext()

    def _run(self) -> None:
        launch = self._launch()
        app = self._start_app(launch)
        base_url = f"http://127.0.0.1:{launch.host_port}"
        adapter = adapter_for(self.plan.images.api, base_url)
        try:
            early = self._wait_api(app, adapter, base_url)
            if early:
                self._decide(early, None, app)
                return
            llm = self._prepare_tasks(adapter, app)
            try:
                adapter.store_settings(llm)
                self.conversation = adapter.create_conversation(self.plan.message)
                self.runtime_name = adapter.runtime_container_name(self.conversation)
                self.result.runtime_container = self.runtime_name
                cleanup.register(self.plan.run_id, self.runtime_name)
            except (ApiError, httpx.HTTPError) as e:
                self._decide(Decision("fail", "api-error", str(e)[:400]), None, app)
                return
            self._watch(adapter, app)
            if self.result.connect.verdict == "pass" and self.runner is not None:
                self._run_tasks(adapter)
        finally:
            adapter.close()

    # -- tasks ----------------------------------------------------------------------------

    def _prepare_tasks(self, adapter: Adapter, app: docker.models.containers.Container) -> LlmSettings:
        """The LLM settings for the conversation: NO_LLM for a connect-only cell, else the
        scripted LLM (V0 calls it from the app: it starts now, in the app's namespace) or
        the user's model."""
        p = self.plan
        if not p.tasks:
            return NO_LLM
        self.runner = TaskRunner(self.client, adapter, "", p.images.api, p.images.app_image, self.name,
                                 self.labels, p.tasks, p.llm, p.task_budget, free_port(), free_port())
        if p.images.api == "v0":
            self._start_llm(app.id)
        return self.runner.settings()

    def _runtime_running(self) -> None:
        """Called on every look while the runtime container runs."""
        if (self.runner and self.plan.images.api == "v1" and self.runner.llm_sidecar is None
                and not self.task_error):
            # V1 calls the LLM from the sandbox: the LLM joins it as soon as it runs.
            self._start_llm(self.runtime_name)

    def _start_llm(self, caller: str | None) -> None:
        assert self.runner is not None
        try:
            self.runner.start_llm(str(caller))
        except (DockerException, TimeoutError) as e:
            self.task_error = f"the scripted LLM did not start: {str(e)[:300]}"

    def _run_tasks(self, adapter: Adapter) -> None:
        assert self.runner is not None
        runtime = self._runtime(adapter)
        if self.task_error or runtime is None:
            why = self.task_error or "the runtime container is gone"
            self.result.tasks = [{"name": n, "verdict": "error", "seconds": None, "detail": why}
                                 for n in self.plan.tasks]
            return
        self.runner.conversation = str(self.conversation)
        self.result.tasks = [r.to_dict() for r in self.runner.run(runtime)]

    def _watch(self, adapter: Adapter, app: docker.models.containers.Container) -> None:
        judge, url, t0 = Judge(), None, time.monotonic()
        decision: Decision | None = None
        while decision is None:
            tick = time.monotonic()
            obs, url = self._observe(adapter, app, t0, url)
            if obs.runtime_status == "running":
                self._runtime_running()
            decision = judge.add(obs)
            if decision is None and time.monotonic() - t0 >= self.plan.connect_budget:
                decision = judge.at_budget(self.plan.connect_budget)
            if decision is None:
                time.sleep(max(0.0, POLL - (time.monotonic() - tick)))
        self.result.connect.runtime_url = url
        self._decide(decision, time.monotonic() - t0, app, judge.last, adapter)

    def _decide(self, d: Decision, seconds: float | None,
                app: docker.models.containers.Container | None = None,
                obs: Observation | None = None, adapter: Adapter | None = None) -> None:
        evidence = [Evidence("harness", d.why)]
        if obs is not None:
            if obs.state:
                evidence.append(Evidence("api", f"app reports {obs.state.status}"))
            for probe in (obs.app_probe, obs.self_probe, obs.callback_probe):
                if probe:
                    evidence.append(Evidence("probe", probe.line()))
            if obs.proxy:
                evidence.append(Evidence("app", "proxy env: " + ", ".join(f"{k}={v}" for k, v in obs.proxy.items())))
        if d.verdict != "pass":
            runtime = self._runtime(adapter) if adapter and self.conversation else None
            if runtime is not None:
                evidence.append(Evidence("runtime", _runtime_facts(runtime)))
                evidence.append(Evidence("runtime-log", _tail(runtime)))
            if app is not None:
                evidence.append(Evidence("app-log", strip_ansi(_tail(app))))
        url = self.result.connect.runtime_url
        self.result.connect = Connect(d.verdict, d.cause, round(seconds, 1) if seconds is not None else None,
                                      url, evidence, direction=d.direction, transient=d.transient)

    def _remove_runtime(self) -> None:
        """The runtime OpenHands started for this cell, by name, and its registry entry."""
        if self.runtime_name:
            with contextlib.suppress(NotFound):
                cleanup.remove_container(self.client.containers.get(self.runtime_name))
            cleanup.unregister(self.plan.run_id, self.runtime_name)

    def teardown(self) -> None:
        """The app first (so it starts nothing new), then the runtimes it started (by label
        and by name), then the network."""
        try:
            if self.runner is not None:  # sidecars live in the app's or runtime's namespace
                self.runner.close()
            if self.app is not None and self.app._container is not None:
                cleanup.remove_container(self.app._container)
            for c in self.client.containers.list(
                    all=True, filters={"label": f"{cleanup.CELL_LABEL}={self.plan.cell.id}"}):
                if c.labels.get(cleanup.RUN_LABEL) == self.plan.run_id:
                    cleanup.remove_container(c)
            self._remove_runtime()
        finally:
            if self.network is not None and self.network._network is not None:
                with contextlib.suppress(NotFound):
                    self.network.remove()


def run_cell(plan: CellPlan) -> CellResult:
    """One cell; once more when the first attempt failed for a reason of the moment (see
    diagnosis.Decision.transient), with the first attempt in the notes."""
    result = _attempt(plan)
    if result.connect.transient:
        first = result.connect
        result = _attempt(plan)
        result.notes.append(f"run twice: the first attempt failed {first.cause} after {first.seconds} s "
                            f"({first.evidence[0].text[:200]})")
    return result


def _attempt(plan: CellPlan) -> CellResult:
    if plan.cell.entrypoint == "headless":
        from harness.headless import HeadlessCell

        return HeadlessCell(plan).run()
    return CellRun(plan).run()
