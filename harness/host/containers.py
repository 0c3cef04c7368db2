"""Containers with a lifetime: what a cell makes is owned by one ExitStack and removed in
reverse order of making, on success, failure or Ctrl-C alike: sidecars (they live in
another container's namespace), the app (so it starts nothing new), the runtimes OpenHands
started, then the cell's network. testcontainers' containers and networks are the context
managers; the harness's label sweep (cleanup.py) covers what a killed process leaves.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from harness import endpoint
from harness.host import cleanup, hostchange
from harness.modes import Publish

# Ryuk's image cannot be pulled where there is no registry, and its per-process reaper
# adds nothing to the harness's own label sweep (cleanup.py), which also survives SIGKILL.
testcontainers_config.ryuk_disabled = True

SIDECAR_READY = 30.0
LOG_TAIL = 20


# The harness's own listeners stay above OpenHands' runtime ports (V0 picks them in
# 30000-59999, V1 from the kernel's ephemeral range): a port the harness holds is then never
# one a runtime picks and the daemon refuses to bind (measured: a soak's -n 1 run lost a V0
# runtime that way).
HARNESS_PORTS = range(61000, 65500)


def free_port() -> int:
    """A port free on this host now. Only for what must be chosen before a container starts
    and listens in the host's namespace (a V1 app, whose sandbox calls it back at that port;
    an app on the host network; a sidecar there); elsewhere Docker picks. On a remote daemon
    the port must be free on the daemon's host: one nothing there accepts on."""
    if endpoint.remote():
        return _free_at(endpoint.daemon_address())
    for port in random.sample(HARNESS_PORTS, 64):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # that range is full: any port the kernel gives
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_at(host: str) -> int:
    """A port of HARNESS_PORTS the daemon's host refuses a connect on (nothing listens there);
    the last one tried when none is refused (a firewall that drops: the cell then says so)."""
    port = HARNESS_PORTS[0]
    for port in random.sample(HARNESS_PORTS, 16):
        with socket.socket() as s:
            s.settimeout(1.0)
            try:
                s.connect((host, port))
            except ConnectionRefusedError:
                return port
            except OSError:
                continue
    return port


def tail(container: Container | None, n: int = LOG_TAIL) -> str:
    """The last `n` lines of a container's log; a container that is gone says so."""
    if container is None:
        return ""
    try:
        return str(container.logs(tail=n).decode(errors="replace")).rstrip()
    except (NotFound, APIError):
        return "(container gone)"


def read_file(container: Container, path: str) -> str | None:
    """A file's text in a running container (docker exec cat); None when it cannot be read."""
    try:
        code, out = container.exec_run(["cat", path], demux=False)
    except (NotFound, APIError):
        return None
    return (out or b"").decode(errors="replace") if code == 0 else None


class OwnedContainer(DockerContainer):
    """testcontainers' container, removed the harness's way: one already gone is fine. A
    container on more user-defined networks than one (a compose service on two) is created on
    the first (before API 1.44, Docker 25, a create takes one) and joins the others right
    after its start, seconds before the app starts any runtime."""

    more_networks: tuple[str, ...] = ()

    def start(self) -> OwnedContainer:
        super().start()
        client = self.get_docker_client().client
        for name in self.more_networks:
            client.networks.get(name).connect(self.get_wrapped_container())
        return self

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        try:
            container = self.get_wrapped_container()
        except ContainerStartException:
            return
        with contextlib.suppress(APIError):  # "removal already in progress"
            cleanup.remove_container(container)
        self.get_docker_client().client.close()


class OwnedNetwork(Network):
    def remove(self) -> None:
        with contextlib.suppress(NotFound):
            super().remove()


class CellResources:
    """Everything one cell makes, in one ExitStack (see the module docstring)."""

    def __init__(self, client: docker.DockerClient, labels: dict[str, str], name: str) -> None:
        self.client = client
        self.labels = labels
        self.name = name
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> CellResources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stack.close()

    def network(self, suffix: str = "") -> str:
        """A user-defined bridge network of the cell's own, named after the cell (and, for
        a deployment's network, after that network too)."""
        net = OwnedNetwork(docker_network_kw={"labels": self.labels, "driver": "bridge"})
        net.name = f"{self.name}-{suffix}" if suffix else self.name
        self.stack.enter_context(net)
        return net.name

    def free_port(self) -> int:  # modes.CellSite
        return free_port()

    def subnet(self, network: str) -> tuple[str, str] | None:  # modes.CellSite
        """The subnet and gateway the daemon gave one of the cell's networks."""
        config = (self.client.networks.get(network).attrs.get("IPAM") or {}).get("Config") or []
        return (config[0]["Subnet"], config[0]["Gateway"]) if config and config[0].get("Gateway") else None

    def local(self, address: str) -> bool:  # modes.CellSite
        """An address of this machine: one a socket can be bound to here."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family) as s:
                s.bind((address, 0))
            return True
        except OSError:
            return False

    def listening(self, port: int) -> bool:  # modes.CellSite
        """Something accepts on `port` of the daemon's host (this machine, or a remote daemon's)."""
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex((endpoint.daemon_address(), port)) == 0

    def scratch(self, why: str) -> str:
        """A temporary folder of the cell's own (a user's host path stands in it), removed
        with the cell; open to every user, as the container's user may be anyone."""
        folder = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(folder, 0o777)
        self.stack.callback(shutil.rmtree, folder, True)
        return folder

    def same_path(self, path: str) -> str | None:  # modes.CellSite
        """`path` itself, made on this machine for the cell (open to every user, as the
        container's user may be anyone) and removed with it, with every folder made for it;
        None where it exists already (someone's: the cell would write into it)."""
        if os.path.lexists(path):
            return None
        self.stack.enter_context(hostchange.folders((path,)))
        return path

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the cell closes, before what was made earlier goes."""
        self.stack.callback(callback)

    def sidecar(self, image: str, name: str, netns_of: str, command: list[str], ready: str,
                env: dict[str, str] | None = None, stack: contextlib.ExitStack | None = None) -> Container:
        """A helper container in another container's network namespace, up when it logs `ready`;
        as root, whatever user the image names (Agent Canvas's is openhands: its git server
        could not make /srv/git)."""
        # the command's program as the entrypoint, not `entrypoint=[]`: podman 4.3.1's Docker API
        # keeps the image's ENTRYPOINT for an empty one (Agent Canvas's tini and entrypoint.sh then
        # start a whole stack in the sidecar), where Docker clears it
        c = (OwnedContainer(image).with_name(name).with_command(command[1:]).with_envs(**(env or {}))
             .with_kwargs(network_mode=f"container:{netns_of}", entrypoint=command[:1], user="0",
                          labels={**self.labels, cleanup.ROLE_LABEL: "sidecar"})
             .waiting_for(LogMessageWaitStrategy(ready).with_startup_timeout(int(SIDECAR_READY))))
        (stack or self.stack).enter_context(c)
        return c.get_wrapped_container()


def app_container(image: str, options: Sequence[tuple[str, str]], command: list[str],
                  labels: dict[str, str]) -> OwnedContainer:
    """The container of a launch's `docker run` options (modes.AppLaunch.options), each
    applied as docker run applies it: the line shown to people and the container that runs
    are one description. An option this does not know is a bug here, not something to drop."""
    app = OwnedContainer(image)
    kwargs: dict[str, Any] = {"labels": labels}
    for flag, value in options:
        if flag == "-e":
            key, _, val = value.partition("=")
            app.with_env(key, val)
        elif flag == "-v":
            source, target, *mode = value.split(":")
            app.with_volume_mapping(source, target, mode[0] if mode else "rw")
        elif flag == "-p":
            p = Publish.parse(value)
            binding = (p.address or "0.0.0.0", p.host)
            bound = app.ports.get(f"{p.container}/tcp")  # a port published on two addresses: both
            app.ports[f"{p.container}/tcp"] = [*bound, binding] if isinstance(bound, list) else [binding]  # type: ignore[assignment]
        elif flag == "--network" and value == "host":
            kwargs["network_mode"] = "host"
        elif flag == "--network" and "network" in kwargs:  # a further network: joined before the start
            app.more_networks = (*app.more_networks, value)
        elif flag == "--network":
            kwargs["network"] = value
        elif flag == "--add-host":
            host, _, ip = value.partition(":")
            kwargs.setdefault("extra_hosts", {})[host] = ip
        elif flag == "--name":
            app.with_name(value)
        elif flag == "-u":
            kwargs["user"] = value
        elif flag == "--entrypoint":
            kwargs["entrypoint"] = [value]
        elif flag == "--hostname":
            kwargs["hostname"] = value
        elif flag == "--privileged":
            kwargs["privileged"] = True
        elif flag in ("--cap-add", "--cap-drop", "--group-add", "--security-opt"):
            kwargs.setdefault(flag[2:].replace("-", "_"), []).append(value)
        else:
            raise ValueError(f"app_container: no rendering for docker run option {flag}")
    if command:
        app.with_command(command)
    app.with_kwargs(**kwargs)  # one call: with_kwargs replaces, it does not merge
    return app
