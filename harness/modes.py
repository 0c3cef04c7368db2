"""The registry of networking modes: how each runs the app container, as people run the
documented command:

    docker run -v /var/run/docker.sock:/var/run/docker.sock \\
      -e SANDBOX_RUNTIME_CONTAINER_IMAGE=<runtime> -p 3000:3000 \\
      --add-host host.docker.internal:host-gateway <app image>

A mode is one entry below: its recipe (network, published port, extra host), the resources
a cell of it needs (a network of its own), whether it shares the host's ports (then a
generation whose runtime binds fixed host ports runs such cells one at a time), and its
rank for the recommendation. Each launch renders itself as the `docker run` line a person
would type. Adding a mode: one entry here. An unknown mode is an error, never a default.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from typing import Literal

from harness.errors import InputError
from harness.generations import Generation

APP_PORT = 3000
# In an env value: the port the app is reached at, which the harness picks per cell (a person's
# `-p 3000:3000` makes it 3000, and so does the docker run line shown to them).
APP_PORT_TOKEN = "{app_port}"
HOST_GATEWAY = {"host.docker.internal": "host-gateway"}


def docker_socket() -> str:
    """The daemon socket the harness talks to, which is also what the app gets mounted: the
    app starts its runtime through it, on the daemon the cell runs on (`DOCKER_HOST=unix://...`:
    a second daemon, a rootless one). A tcp:// daemon mounts its own host's default socket."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def app_command(gen: Generation, port: int) -> list[str]:
    """The app image's own CMD, with the listen port made explicit (needed on the host network)."""
    return ["uvicorn", gen.app_module, "--host", "0.0.0.0", "--port", str(port)]


@dataclass(frozen=True)
class AppLaunch:
    """Everything needed to start one cell's app container."""

    mode: str
    image: str
    env: dict[str, str]  # what a person sets (matrix, mode, --app-env, the generation's needs)
    listen_port: int  # the port the app listens on inside its namespace
    host_port: int | None  # where the harness reaches it on the host; None: Docker picks
    network_mode: str | None = None  # "host" or None
    network: str | None = None  # user-defined network name (custom-network)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    # The generation's runtime calls the app back at the gateway address: publish on all
    # addresses, as `-p 3000:3000` does (otherwise loopback keeps the API private).
    publish_all: bool = False
    # Set on the container but not part of what a person types: they follow from the
    # harness's port choice (a person with -p 3000:3000 needs none of them).
    harness_env: dict[str, str] = field(default_factory=dict)
    # The headless entry point's argv (`python -m openhands.core.main -t ...`): no API, no port.
    headless: list[str] | None = None
    socket: str = field(default_factory=docker_socket)  # the daemon's socket, mounted at /var/run/docker.sock

    def container_env(self) -> dict[str, str]:
        """The env the container gets: the harness's own, then what a person sets, with the
        app's port filled in where a setting names it."""
        port = str(self.host_port if self.host_port is not None else APP_PORT)
        return {k: v.replace(APP_PORT_TOKEN, port) for k, v in {**self.harness_env, **self.env}.items()}

    def docker_run(self, secrets: frozenset[str] = frozenset(), name: str = "openhands-app") -> str:
        """The equivalent command for a person, with secret values left as placeholders."""
        parts = ["docker", "run", "-it", "--rm"]
        if self.network:
            parts.insert(0, f"docker network create {self.network} &&")
        for k, v in self.env.items():
            value = f"<{k}>" if k in secrets else v.replace(APP_PORT_TOKEN, str(APP_PORT))
            parts += ["-e", f"{k}={value}"]
        parts += ["-v", f"{self.socket}:/var/run/docker.sock"]
        if self.network_mode == "host":
            parts += ["--network", "host"]
        elif not self.headless:
            parts += ["-p", f"{APP_PORT}:{APP_PORT}"]
        if self.network:
            parts += ["--network", self.network]
        for h, ip in self.extra_hosts.items():
            parts += ["--add-host", f"{h}:{ip}"]
        parts += ["--name", name, self.image, *(self.headless or [])]
        return " ".join(p if p.endswith("&&") else shlex.quote(p) for p in parts)


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # what it is, in a person's words
    rank: int  # recommendation: lower asks less of the host
    why: str  # the recommendation's reason for picking it
    network: Literal["default", "host", "own"]  # own: a user-defined bridge network per cell
    add_host_gateway: bool = True

    @property
    def shares_host_ports(self) -> bool:
        return self.network == "host"

    def must_run_alone(self, gen: Generation) -> bool:
        """On the host network, a runtime that binds fixed host ports allows one cell at a time."""
        return self.shares_host_ports and bool(gen.host_network_ports)

    def launch(self, gen: Generation, *, image: str, env: dict[str, str], host_port: int | None,
               network: str | None = None) -> AppLaunch:
        """The app container for a cell of this mode and generation. `host_port` None lets
        Docker pick the published port, where the generation allows it."""
        if self.network == "own" and network is None:
            raise ValueError(f"{self.name} needs the cell's network name")
        extra_hosts = dict(HOST_GATEWAY) if self.add_host_gateway else {}
        if self.network == "host":
            if host_port is None:
                raise ValueError("on the host network the app listens on the host port itself")
            launch = AppLaunch(self.name, image, {**gen.host_network_env, **env}, host_port, host_port,
                               network_mode="host", extra_hosts=extra_hosts, command=app_command(gen, host_port))
        else:
            launch = AppLaunch(self.name, image, env, APP_PORT, host_port, extra_hosts=extra_hosts,
                               network=network if self.network == "own" else None)
        if gen.callback:
            if launch.host_port is None:
                raise ValueError(f"{gen.name} calls the app back: its port must be chosen before it starts")
            # The sandbox calls back host.docker.internal:SANDBOX_HOST_PORT (default 3000).
            launch = replace(launch, publish_all=True, harness_env={"SANDBOX_HOST_PORT": str(launch.host_port)})
        return launch


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("bridge", "the default bridge, socket mounted, no --add-host", rank=3,
         why="the default bridge without --add-host", network="default", add_host_gateway=False),
    Mode("host", "the documented command with --network host", rank=2,
         why="the documented command with --network host", network="host"),
    Mode("custom-network", "the documented command on a user-defined bridge network of the cell's own", rank=1,
         why="the documented command on a Docker network of its own", network="own"),
    Mode("host-gateway", "the documented command as is", rank=0,
         why="the documented command as is", network="default"),
)}


def get(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise InputError(f"unknown mode {name!r} (known: {', '.join(MODES)})") from None
