"""The daemon's endpoint as DOCKER_HOST names it (docker_host.adopt_context writes a context's
there): where its socket is, whether it is on this machine, where the ports it publishes
are reached, and how an app container on it reaches it back. Environment only, no client:
the data modules (modes, deployments) ask it too."""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def docker_socket() -> str:
    """The daemon socket the harness talks to, which is also what the app gets mounted: the
    app starts its runtime through it, on the daemon the cell runs on (`DOCKER_HOST=unix://...`:
    a second daemon, a rootless one); for any other DOCKER_HOST, the daemon's host's default socket."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def app_socket() -> str | None:
    """The socket an app container on the daemon gets mounted, to start its runtime with. None
    for a tcp:// daemon, whose host's socket path the harness cannot know: the app is told the
    daemon's endpoint instead (app_env). An ssh:// daemon's host is where `docker system
    dial-stdio` reached its default socket, so that one is mounted."""
    return None if os.environ.get("DOCKER_HOST", "").startswith("tcp://") else docker_socket()


def app_env() -> dict[str, str]:
    """What an app container on a tcp:// daemon is told to reach that daemon with (it mounts no
    socket there): DOCKER_HOST naming the daemon's endpoint, which the app's docker client
    reads (V0's runtime and 1.x's sandbox service both call `docker.from_env()`)."""
    host = os.environ.get("DOCKER_HOST", "")
    return {"DOCKER_HOST": host} if host.startswith("tcp://") else {}


def remote() -> bool:
    """The daemon is elsewhere: facts of this machine (its firewall, its iptables) are not its."""
    return not os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")


def daemon_address() -> str:
    """Where ports the daemon publishes are reached from this machine: the daemon's host as
    DOCKER_HOST names it (`tcp://HOST:PORT`, `ssh://USER@HOST`), 127.0.0.1 for a daemon on
    this machine's socket."""
    if not remote():
        return "127.0.0.1"
    return urlsplit(os.environ["DOCKER_HOST"]).hostname or "127.0.0.1"
