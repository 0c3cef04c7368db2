"""A cell's app container and what OpenHands starts from it: the mode's networks, the app
started as its launch describes it (the line people read and the container are one
description, modes.AppLaunch), the wait for its API, and the runtimes it starts, named in
the run registry at once and removed after the app."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

import docker
from docker.errors import NotFound
from docker.models.containers import Container

from harness import endpoint, knobs, modes, progress
from harness.cells.diagnosis import Decision, no_docker, unmasked
from harness.cells.facts import address_on, cpu_and_memory, env_of
from harness.cells.plan import CellPlan, runtime_kwargs
from harness.deployments import Deployment
from harness.generations import Generation
from harness.host import cleanup, docker_host, podman, rootlesskit
from harness.host.containers import CellResources, app_container, free_port, tail
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from, probe_here
from harness.host.rootlesskit import RootlessKit
from harness.model import Cause, CellResult, Verdict, strip_ansi
from harness.openhands import Client, docker_failure
from harness.secrets import redact_env

# Where a server says it listens (uvicorn's line, the agent-server's own), its address
# perhaps on the next line of a wrapped log.
BOUND = re.compile(r"(Uvicorn running on|Starting OpenHands Agent Server on)[\s\S]{0,80}?"
                   r"(https?://[\w.:\[\]-]+|\d+\.\d+\.\d+\.\d+:\d+)")


class HarnessPath:
    """The harness's own path to the app's API, checked while the API does not answer: once
    the app answers on its own port from inside its namespace, two more misses of the
    harness's (a look apart, so an API that was just coming up is not cut) prove that the
    path from this machine is what fails."""

    FIRST_LOOK = 5.0  # seconds after the app started: before that, not answering is booting
    EVERY = 3.0
    MISSES = 2

    def __init__(self, app: Container, port: int, health: str, url: str) -> None:
        self.app, self.port, self.health = app, port, health
        u = urlsplit(url)
        self.host, self.harness_port = u.hostname or "127.0.0.1", u.port or 80
        self.next_look, self.misses = self.FIRST_LOOK, 0

    def look(self, elapsed: float, why: str) -> Decision | None:
        if elapsed < self.next_look:
            return None
        self.next_look = elapsed + self.EVERY
        inside = probe_from(self.app, "app (its own port, inside its namespace)", "127.0.0.1", self.port, self.health)
        if not _answers(inside):
            self.misses = 0
            return None
        mine = probe_here("the harness (this machine)", self.host, self.harness_port, self.health)
        self.misses = 0 if _answers(mine) else self.misses + 1
        if self.misses < self.MISSES:
            return None
        if (bound := self.loopback_only(inside)) is not None:
            return bound
        return Decision(Verdict.ERROR, Cause.HARNESS_ERROR,
                        f"the harness cannot reach the app's API at {self.host}:{self.harness_port} "
                        f"({_what(mine)}) while the app answers on its own port {self.port} inside its namespace"
                        + (f": {why}" if why else "") + f". Probes: {mine.line()} | {inside.line()}")


    def loopback_only(self, inside: NetProbe) -> Decision | None:
        """The app answers on 127.0.0.1 inside its container and refuses at its own address
        there: it binds the loopback, so no published port and no other container reach it.
        That is the app's (its bind address), not the harness's path."""
        self.app.reload()
        address = next((n.get("IPAddress") for n in (self.app.attrs["NetworkSettings"].get("Networks") or {}).values()
                        if n.get("IPAddress")), None)
        if not address:  # the host network: the harness's own loopback is the app's
            return None
        at = probe_from(self.app, "app (its own address, inside its namespace)", address, self.port, self.health)
        if at.tcp != "refused":
            return None
        said = BOUND.findall(strip_ansi(tail(self.app, 300)))  # rich wraps the line: the address may be below
        own = f" Its own words: '{said[-1][0]} {said[-1][1]}'." if said else ""
        return Decision(Verdict.FAIL, Cause.LOOPBACK_BOUND,
                        f"the app listens on its container's loopback only: it answers at 127.0.0.1:{self.port} "
                        f"inside its container and refuses at its own address {address}:{self.port}, so the port "
                        f"the daemon publishes (and every other container) reaches nothing.{own} Probes: "
                        f"{inside.line()} | {at.line()}")


def _answers(p: NetProbe) -> bool:
    return p.tcp == "open" and (p.http or "").startswith("HTTP/")


def _what(p: NetProbe) -> str:
    if p.tcp == "open":
        return f"connected, then {p.http or 'no HTTP answer'}"
    return {"refused": "refused", "timeout": "no answer to its connects", "unreachable": "rejected"}.get(
        p.tcp or "", p.error or p.dns)


def below_the_cell(mode: modes.ModeSpec, gen: Generation) -> dict[str, str]:
    """Settings every app gets below what its cell sets: a tcp:// daemon's DOCKER_HOST (to an
    app that starts containers; a deployment's only where it mounts a socket, which its
    placement says), and OH_MATRIX_APP_ENV (also below what a user's deployment sets in its
    own file)."""
    if isinstance(mode, Deployment):
        own = mode.service.environment
        return {k: v for k, v in knobs.app_env().items() if k not in own}
    return {**(endpoint.app_env() if gen.starts_containers else {}), **knobs.app_env()}


def user_id_note(client: docker.DockerClient, gen: Generation, env: dict[str, str]) -> str | None:
    """On a rootless daemon, what the runtime's user is on this machine: the owner there of
    what the agent writes in a mounted folder."""
    if gen.runtime_uid is None or (kit := docker_host.rootless_kit(client)) is None:
        return None
    uid, why = gen.load(gen.runtime_uid)(env)
    said = rootlesskit.user_id_on_host(kit, uid)
    return f"the runtime's user is uid {uid} in its container ({why}); {said}" if said else None


def labelled(gen: Generation, launch: modes.AppLaunch, labels: dict[str, str], notes: list[str]) -> modes.AppLaunch:
    """The launch with the cell's labels in the setting OpenHands passes on to the runtimes it
    starts, so they are swept with the cell; said in `notes` (a user's deployment's)."""
    if not gen.label_env:
        return launch
    merged = runtime_kwargs(launch.container_env().get(gen.label_env), labels, gen.label_env)
    note = f"{gen.label_env}: the harness's labels ({', '.join(labels)}) added, so the runtimes OpenHands starts " \
           "are removed with the cell"
    if note not in notes:
        notes.append(note)
    return replace(launch, env={**launch.env, gen.label_env: merged})


def unpublished(container: Container, launch: modes.AppLaunch, health: str, budget: float,
                phase: Callable[[str], None]) -> tuple[Decision, float | None]:
    """A deployment that publishes ports, but not the app's: once the app answers on its own
    port inside its namespace (so it is up, and listening where its release says), the port a
    person reaches it at is probed from this machine; the cell fails on that, in seconds.
    (The decision, and the seconds the app took to answer.)"""
    t0 = time.monotonic()
    while time.monotonic() - t0 < budget:
        if (gone := _exited(container)) is not None:
            return gone, None
        inside = probe_from(container, "app (its own port, inside its namespace)", "127.0.0.1", launch.listen_port,
                            health)
        if _answers(inside):
            seconds = round(time.monotonic() - t0, 1)
            phase(f"app up after {seconds} s on its own port {launch.listen_port}")
            probes = [inside.line()]
            if launch.user_port is not None:
                probes.insert(0, probe_here("a person (this machine, the port your deployment publishes)",
                                            "127.0.0.1", launch.user_port, health).line())
            return Decision(Verdict.FAIL, Cause.APP_NOT_PUBLISHED,
                            f"{launch.not_published}: the app answers on {launch.listen_port} inside its namespace, "
                            f"and nothing of it at the port you reach. Probes: {' | '.join(probes)}"), seconds
        time.sleep(1)
    return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED, f"the app did not answer on its own port {launch.listen_port} "
                                                         f"within {budget:.0f} s ({launch.not_published})"), None


def _exited(container: Container) -> Decision | None:
    container.reload()
    if container.status in ("running", "created"):
        return None
    code = container.attrs["State"].get("ExitCode")
    return Decision(Verdict.FAIL, Cause.APP_EXITED,
                    f"app container {container.status} with exit code {code} before its API answered")


def why_unreachable(client: docker.DockerClient, launch: modes.AppLaunch) -> str:
    """The daemon's mechanism that keeps the harness off the app's port, where it knows one."""
    if endpoint.remote():
        return ("the daemon is remote (DOCKER_HOST), so the app's port is published on the daemon's "
                "host, not at this machine's 127.0.0.1")
    if launch.network_mode == "host" and docker_host.rootless(client):
        return ("on a rootless daemon `--network host` is RootlessKit's network namespace, not this "
                "machine's: a port the app listens on there is published nowhere, so neither the harness "
                "nor a browser on this machine reaches it")
    return ""


class AppLauncher:
    """One cell's app and the runtimes it starts (its CellResources are the modes.CellSite of
    a mode that places a user's deployment: free ports, folders and subnets of the cell's own)."""

    def __init__(self, plan: CellPlan, result: CellResult, client: docker.DockerClient,
                 resources: CellResources) -> None:
        self.plan, self.result, self.client, self.resources = plan, result, client, resources
        self.gen = plan.gen
        self.mode: modes.ModeSpec = plan.cell.mode.spec
        self.name, self.labels = resources.name, resources.labels
        self.networks: dict[str, str] = {}  # the mode's networks -> the cell's own
        self.app_env: dict[str, str] = {}  # the app process's whole environment, once started
        self.runtime_name: str | None = None
        self.app_cpu_at_api = 0.0  # the app's CPU seconds when its API first answered
        self.daemon: str | None = None  # how the started app reaches a daemon (AppLaunch.daemon)
        self._launched = False

    def phase(self, text: str) -> None:
        """A phase line for the user watching the run (progress.py)."""
        progress.phase(self.plan.cell.id, text)

    def container(self, name: str | None) -> Container | None:
        if not name:
            return None
        try:
            return self.client.containers.get(name)
        except NotFound:
            return None

    def launch(self) -> modes.AppLaunch:
        p = self.plan
        env = {**p.images.app_env, **below_the_cell(self.mode, self.gen), **p.env}
        if self.gen.runtime_image_env and p.images.runtime_image:  # V0 is told its runtime image, as documented
            env = {self.gen.runtime_image_env: p.images.runtime_image, **env}
        if not self._launched:  # the cell's networks, and the runtimes' removal after the app, before it
            self._launched = True
            self.networks = {n: self.resources.network("" if n == modes.OWN_NETWORK else n)
                             for n in self.mode.networks}
            self.resources.on_close(self._remove_runtimes)
        # Docker picks the published port unless the app must know it before it starts.
        chosen = self.mode.network == "host" or self.gen.callback or self.mode.places_ports
        host_port = p.app_port or self.mode.fixed_app_port(self.gen) or (free_port() if chosen else None)
        launch = self.mode.launch(self.gen, image=p.images.app_image, env=env, host_port=host_port,
                                  networks=self.networks, site=self.resources)
        if endpoint.remote() and not launch.publish_all and launch.publish is None:
            # the harness reaches the app from this machine, so not on the daemon's loopback
            launch = replace(launch, publish_all=True, placement=(
                *launch.placement, f"published on every address of the daemon's host "
                f"({endpoint.daemon_address()}), not its loopback: the harness reaches the app from this machine"))
        said = (*launch.placement, user_id_note(self.client, self.gen, launch.container_env()))
        self.result.notes += [n for n in said if n and n not in self.result.notes]
        self.result.docker_run = launch.docker_run(p.secrets)
        self.result.app_env = redact_env(launch.env)  # a result is validated: a Secret would be a plain str
        return launch

    def start(self, launch: modes.AppLaunch, stack: contextlib.ExitStack | None = None) -> Container:
        launch = labelled(self.gen, launch, self.labels, self.result.notes if isinstance(self.mode, Deployment) else [])
        env = launch.container_env()  # what the user sets wins over the harness's own
        app = app_container(launch.image, launch.options(placed=True, name=self.name), launch.argv(), self.labels)
        container = (stack or self.resources.stack).enter_context(app).get_wrapped_container()
        # The process's whole environment: the image's ENV (V0's SANDBOX_LOCAL_RUNTIME_URL is
        # there) under what was passed, so a URL formula read before its log line is right.
        self.app_env = {**env_of(container), **env}
        self.daemon = launch.daemon()
        self.result.socket_mounted_in = [self.name] if self.daemon and "socket" in self.daemon else []
        self.phase(f"app {self.name} started from {launch.image}")
        if launch.network_mode == "host" and launch.host_port and (kit := docker_host.rootless_kit(self.client)):
            self._forward(kit, launch.host_port)
        # podman before 4.7 writes an --add-host's host-gateway into /etc/hosts as it is (host/podman.py)
        if (note := podman.unmapped_host_gateway(self.client, container)) is not None:
            self.result.notes.append(note)
        return container

    def _forward(self, kit: RootlessKit, port: int) -> None:
        """A rootless daemon's host network is RootlessKit's namespace: the app's port there is
        forwarded to this machine's loopback through RootlessKit's port API, as a user reaching
        it would (`rootlessctl add-ports`), for the cell only and named in the run registry."""
        forward_id = rootlesskit.forward(kit, port)
        key = cleanup.register_forward(self.plan.run_id, kit.api_socket, forward_id)

        def unforward() -> None:
            rootlesskit.unforward(kit.api_socket, forward_id)
            cleanup.unregister_forward(self.plan.run_id, key)

        self.resources.on_close(unforward)
        self.result.notes.append(
            f"on this rootless daemon `--network host` is RootlessKit's namespace: the app's port {port} there was "
            f"forwarded to this machine's 127.0.0.1:{port} through RootlessKit's port API for the cell, as "
            f"`rootlessctl add-ports 127.0.0.1:{port}:{port}/tcp` does; without it nothing on this machine reaches "
            "the app")

    def app_url(self, launch: modes.AppLaunch, app: Container) -> str:
        """Where the harness reaches the app: the host port chosen, or the one Docker chose;
        for an app published nowhere, its address on its network (a local daemon's bridges are
        this machine's: elsewhere the harness's path is cut and said so by wait_api)."""
        if launch.reach_at is not None:
            return f"http://{address_on(app, launch.reach_at)}:{launch.listen_port}"
        at = endpoint.daemon_address()  # a remote daemon publishes on its own host
        if launch.host_port is not None:
            return f"http://{at}:{launch.host_port}"
        app.reload()
        binds = (app.attrs.get("NetworkSettings") or {}).get("Ports", {}).get(f"{launch.listen_port}/tcp") or []
        return f"http://{at}:{binds[0]['HostPort']}"

    def wait_api(self, container: Container, client: Client, launch: modes.AppLaunch, url: str) -> Decision | None:
        """None once the app's API answers; else why not, within the app budget. When the app
        answers on its own port inside its namespace while the harness's connects to `url`
        still fail, the harness's path is what is broken: an `error` saying so in seconds,
        never an OpenHands failure after the whole budget."""
        t0 = time.monotonic()
        path = HarnessPath(container, launch.listen_port, self.gen.health_path, url)
        if launch.not_published is not None:
            decision, self.result.app_seconds = unpublished(container, launch, self.gen.health_path,
                                                            self.plan.app_budget, self.phase)
            return decision
        while time.monotonic() - t0 < self.plan.app_budget:
            if (gone := _exited(container)) is not None:
                return unmasked(gone, docker_failure(strip_ansi(tail(container, 400))), self.daemon)
            if (line := docker_failure(strip_ansi(tail(container, 400)))) is not None:  # its own words, at once
                return no_docker(line, self.daemon)
            if client.healthy():
                self.result.app_seconds = round(time.monotonic() - t0, 1)
                self.phase(f"app's API up after {self.result.app_seconds} s")
                self.app_cpu_at_api = cpu_and_memory(container)[0]
                return None
            if (cut := path.look(time.monotonic() - t0, why_unreachable(self.client, launch))) is not None:
                return cut
            time.sleep(1)
        return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED,
                        f"the app's API did not answer within {self.plan.app_budget:.0f} s")

    # -- the runtimes OpenHands starts ----------------------------------------------------

    def runtime_is_app(self) -> None:
        """The agent's tools run in the app's own container (Generation.runtime_is_app): it is
        the cell's runtime, swept as the app, never removed as a runtime."""
        self.runtime_name = self.result.runtime_container = None
        self.phase("conversation created: its agent runs in the app's own container")

    def runtime(self) -> Container | None:
        """The cell's runtime container as it is now: the app itself where the agent runs there."""
        return self.container(self.name if self.gen.runtime_is_app else self.runtime_name)

    def track_runtime(self, name: str) -> None:
        """A runtime OpenHands will create for this cell: named in the run registry at once,
        so a sweep after a crash still finds it (V1 sandboxes carry no label of ours)."""
        self.runtime_name = self.result.runtime_container = name
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
