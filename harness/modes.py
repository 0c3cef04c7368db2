"""How each networking mode runs the app container, as people run the documented command:

    docker run -v /var/run/docker.sock:/var/run/docker.sock \\
      -e SANDBOX_RUNTIME_CONTAINER_IMAGE=<runtime> -p 3000:3000 \\
      --add-host host.docker.internal:host-gateway <app image>

    bridge          default bridge, socket mounted, no extra host
    host-gateway    the documented command as is
    host            the documented command with --network host (no -p; the app's port
                    is made unique per cell so parallel cells don't collide)
    custom-network  the documented command on a user-defined bridge network of the cell's own

Each recipe renders itself as the `docker run` line a person would type.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from harness.matrix import MODES

APP_PORT = 3000
HOST_GATEWAY = {"host.docker.internal": "host-gateway"}


def docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def app_command(api: str, port: int) -> list[str]:
    """The app image's own CMD, with the listen port made explicit (needed in host mode)."""
    module = "openhands.server.listen:app" if api == "v0" else "openhands.app_server.app:app"
    return ["uvicorn", module, "--host", "0.0.0.0", "--port", str(port)]


@dataclass
class AppLaunch:
    """Everything needed to start one cell's app container."""

    mode: str
    image: str
    env: dict[str, str]
    listen_port: int  # the port the app listens on inside its namespace
    host_port: int  # where the harness reaches it on 127.0.0.1
    network_mode: str | None = None  # "host" or None
    network: str | None = None  # user-defined network name (custom-network)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    # V1's sandbox calls the app back at the gateway address: publish on all addresses,
    # as `-p 3000:3000` does (V0 needs no callback: loopback keeps the API private).
    publish_all: bool = False
    # Set on the container but not part of what a person types: they follow from the
    # harness's port choice (a person with -p 3000:3000 needs none of them).
    harness_env: dict[str, str] = field(default_factory=dict)
    # The headless entry point's argv (`python -m openhands.core.main -t ...`): no API, no port.
    headless: list[str] | None = None

    def docker_run(self, secrets: frozenset[str] = frozenset(), name: str = "openhands-app") -> str:
        """The equivalent command for a person, with secret values left as placeholders."""
        parts = ["docker", "run", "-it", "--rm"]
        if self.network:
            parts.insert(0, f"docker network create {self.network} &&")
        for k, v in self.env.items():
            value = f"<{k}>" if k in secrets else v
            parts += ["-e", f"{k}={value}"]
        parts += ["-v", "/var/run/docker.sock:/var/run/docker.sock"]
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


# V1 host networking (PR #12445): the sandbox joins the host network on fixed ports
# 8000/8001/8011/8012, so two such sandboxes can never run at once (see cell.py's lock).
V1_HOST_NETWORK = {"AGENT_SERVER_USE_HOST_NETWORK": "true"}


def recipe(mode: str, *, image: str, api: str, env: dict[str, str], host_port: int,
           network: str | None = None) -> AppLaunch:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "bridge":
        launch = AppLaunch(mode, image, env, APP_PORT, host_port)
    elif mode == "host-gateway":
        launch = AppLaunch(mode, image, env, APP_PORT, host_port, extra_hosts=dict(HOST_GATEWAY))
    elif mode == "host":
        host_env = {**V1_HOST_NETWORK, **env} if api == "v1" else env
        launch = AppLaunch(mode, image, host_env, host_port, host_port, network_mode="host",
                           extra_hosts=dict(HOST_GATEWAY), command=app_command(api, host_port))
    elif network is None:
        raise ValueError("custom-network needs the cell's network name")
    else:
        launch = AppLaunch(mode, image, env, APP_PORT, host_port, network=network,
                           extra_hosts=dict(HOST_GATEWAY))
    if api == "v1":
        launch.publish_all = True
        # The sandbox calls back host.docker.internal:SANDBOX_HOST_PORT (default 3000).
        launch.harness_env = {"SANDBOX_HOST_PORT": str(host_port)}
    return launch
