"""A user's deployment of the OpenHands app, as the harness honours it: the settings of one
container, read from a compose service or a `docker run` line (compose.py, dockerrun.py).

Only what changes how the app runs and reaches its runtime is here; every other key or flag
is refused where it is read (docs/deployments.md lists the subset), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

APP_CONTAINER_PORT = 3000  # where the OpenHands app listens in its container (the images' CMD)
SOCKET = "/var/run/docker.sock"  # where the app expects the daemon's socket


@dataclass(frozen=True)
class Port:
    """A published port: `[address:]host:container`; host None lets Docker pick."""

    container: int
    host: int | None = None
    address: str = ""


@dataclass(frozen=True)
class Volume:
    """A mount: a host path (bind) or a named volume, at `target` in the container."""

    source: str
    target: str
    read_only: bool = False
    kind: str = "bind"  # "bind" or "volume"

    @property
    def is_socket(self) -> bool:
        """The daemon's socket, which the app needs to start its runtime: mounted where the
        user mounts it, from the daemon the cell runs on, never a copy (and never a folder)."""
        return self.kind == "bind" and (self.target == SOCKET or self.source.endswith("/docker.sock"))


@dataclass(frozen=True)
class Network:
    """A user-defined network the service joins, as the file declares it."""

    name: str  # the key in the file (`networks: {mine: ...}`) or the docker run --network value
    driver: str = "bridge"
    subnet: str = ""  # ipam's, when the file fixes one (`172.22.0.0/24`)
    gateway: str = ""  # ipam's gateway, or the subnet's first address when only the subnet is fixed


# Options of the container honoured as written, with no placement: the name of the option in
# docker run, and the compose key that says the same. `--privileged` takes no value.
FLAGS = {"--hostname": "hostname", "--privileged": "privileged", "--cap-add": "cap_add",
         "--cap-drop": "cap_drop", "--group-add": "group_add", "--security-opt": "security_opt"}


@dataclass(frozen=True)
class ServiceSpec:
    """One app container as its owner wrote it (values interpolated, env files read)."""

    image: str | None
    environment: dict[str, str] = field(default_factory=dict)  # values are secrets (harness/secrets.py)
    env_files: tuple[str, ...] = ()  # the env files read, as written (the line people read names them)
    ports: tuple[Port, ...] = ()
    network_mode: str | None = None  # "host", "bridge" or None (compose's default network)
    networks: tuple[Network, ...] = ()
    extra_hosts: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    volumes: tuple[Volume, ...] = ()
    container_name: str | None = None
    command: tuple[str, ...] | None = None
    # further docker run options as written, applied as docker applies them (FLAGS)
    flags: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()  # what the cell does not do of the file, said in its notes


    def mounts_socket(self) -> bool:
        """The app is given a daemon's socket: without one it cannot start a runtime."""
        return any(v.is_socket for v in self.volumes)

    def api_port(self, container: int = APP_CONTAINER_PORT) -> Port | None:
        """The published port the app's API is reached at (its container port: the app
        server's 3000 unless its generation says another, Generation.app_port)."""
        return next((p for p in self.ports if p.container == container), None)


# How a command runs OpenHands, by the module it runs (`python -m MODULE`) or its program.
HEADLESS_MODULE = "openhands.core.main"  # V0's headless entry point
CLI_PROGRAMS = ("openhands",)  # the `openhands` CLI (PyPI's openhands), run headless
CLI_MODULES = ("openhands_cli",)
REFUSED_MODULES = {"openhands.cli.main": "V0's interactive CLI in the app image, which reads a terminal the cell "
                                         "does not give it"}


def entry_point(command: tuple[str, ...] | None) -> str:
    """Which entry point a container's command is (matrix.ENTRYPOINTS): `python -m
    openhands.core.main` is headless, the `openhands` CLI is cli, anything else (none: the
    image's own command, the app server) is the API. A deployment is judged as what it runs."""
    words = list(command or ())
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
    if module == HEADLESS_MODULE:
        return "headless"
    if module.split(".")[0] in CLI_MODULES or (words and words[0].rsplit("/", 1)[-1] in CLI_PROGRAMS):
        return "cli"
    return "api"


def refused_command(command: tuple[str, ...] | None) -> str | None:
    """Why a command cannot be judged as any entry point, if it cannot."""
    words = list(command or ())
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
    return REFUSED_MODULES.get(module)


TASK_FLAGS = ("-t", "--task")
FILE_FLAGS = ("-f", "--file")


def with_task(command: tuple[str, ...], prompt: str) -> tuple[list[str], str]:
    """The user's headless or CLI command with the harness's task in place of theirs
    (`-t`/`--task`, or a task file `-f`), everything else as written; and what changed, in words."""
    out: list[str] = []
    words, replaced = list(command), None
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=")
        if flag in TASK_FLAGS + FILE_FLAGS and flag.startswith("--") and eq:
            replaced, i = f"{flag}={value}", i + 1
            continue
        if word in TASK_FLAGS + FILE_FLAGS and i + 1 < len(words):
            replaced, i = f"{word} {words[i + 1]}", i + 2
            continue
        out.append(word)
        i += 1
    said = f"your task ({replaced}) is the harness's: -t with each task's message" if replaced else \
        "the harness's task added: -t with each task's message"
    return [*out, "-t", prompt], said

