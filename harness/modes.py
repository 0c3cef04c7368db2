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

import shlex
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from harness.endpoint import app_socket
from harness.errors import InputError
from harness.generations import Generation
from harness.secrets import Secret, is_secret, reveal

APP_PORT = 3000
# In an env value: the port the app is reached at, which the harness picks per cell (a person's
# `-p 3000:3000` makes it 3000, and so does the docker run line shown to them).
APP_PORT_TOKEN = "{app_port}"
HOST_GATEWAY = {"host.docker.internal": "host-gateway"}
DOCKER_SOCKET = "/var/run/docker.sock"  # where the app's docker client looks for the daemon
OWN_NETWORK = "own"  # custom-network's network, as the mode names it
DOCUMENTED = "the documented command as is"  # a generation's documented mode, as the recommendation says it


class CellSite(Protocol):
    """What a cell offers a mode that places a user's deployment: free host ports and
    temporary folders of its own, removed with the cell, and what the machine answers (the
    placement asks, and touches no socket itself: docs/architecture.md, "Pure parts")."""

    def free_port(self) -> int: ...

    def scratch(self, why: str) -> str: ...

    def same_path(self, path: str) -> str | None: ...  # `path` made here for the cell; None: it exists

    def subnet(self, network: str) -> tuple[str, str] | None: ...  # a cell network's subnet and gateway

    def local(self, address: str) -> bool: ...  # an address of this machine

    def listening(self, port: int) -> bool: ...  # something accepts on that port of the daemon's host


def app_command(gen: Generation, port: int) -> list[str]:
    """The app image's own CMD, with the listen port made explicit (needed on the host network)."""
    return ["uvicorn", gen.app_module, "--host", "0.0.0.0", "--port", str(port)]


def quote(word: str) -> str:
    """shlex.quote, but a leading `~/` stays outside the quotes: the shell expands it, as in
    the line the user wrote (`-v ~/.openhands:/.openhands`)."""
    if word.startswith("~/"):
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)


@dataclass(frozen=True)
class Publish:
    """One published port, `-p [address:]host:container`; host None lets Docker pick."""

    container: int
    host: int | None
    address: str = ""  # "": every address

    def option(self) -> str:
        host = "" if self.host is None else str(self.host)
        if self.address:
            return f"{self.address}:{host}:{self.container}"
        return f"{host}:{self.container}" if host else str(self.container)

    @classmethod
    def parse(cls, value: str) -> Publish:
        """`-p`'s value as docker run reads it: [[address:]host:]container."""
        *front, container = value.split(":")
        address, host = (front if len(front) == 2 else ["", *front]) if front else ["", ""]
        return cls(int(container), int(host) if host else None, address)


Option = tuple[str, str]  # one `docker run` option and its value, e.g. ("-e", "KEY=value")


@dataclass(frozen=True)
class AppLaunch:
    """One cell's app container, described once. `options(placed=False)` is the command a
    person types (`docker_run`); `options(placed=True)` the container the harness starts
    (`container`): the same description with the harness's placement, the host port it picked,
    the address it publishes on and the settings that follow from them. Both renderings come
    from the one function, so the line people copy is the container that ran."""

    mode: str
    image: str
    env: dict[str, str]  # what a person sets (matrix, mode, --app-env, the generation's needs)
    listen_port: int  # the port the app listens on inside its namespace
    host_port: int | None  # where the harness reaches it on the host; None: Docker picks
    network_mode: str | None = None  # "host" or None
    network: str | None = None  # user-defined network name (custom-network)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    moved_hosts: dict[str, str] = field(default_factory=dict)  # extra hosts that moved with a network's subnet
    command: list[str] | None = None
    # The generation's runtime calls the app back at the gateway address: publish on all
    # addresses, as `-p 3000:3000` does (otherwise loopback keeps the API private).
    publish_all: bool = False
    # Set on the container but not part of what a person types: they follow from the
    # harness's port choice (a person with -p 3000:3000 needs none of them).
    harness_env: dict[str, str] = field(default_factory=dict)
    # The headless entry point's argv (`python -m openhands.core.main -t ...`): no API, no port.
    headless: list[str] | None = None
    # the daemon's socket, mounted at /var/run/docker.sock; None: a tcp:// daemon, named by DOCKER_HOST
    socket: str | None = field(default_factory=app_socket)
    # A user's deployment (harness/deployments) says more than a built-in mode: its own
    # published ports, mounts, user, container name and command, as written, and where the
    # harness placed each for the cell (another host port, a temporary folder, the cell's
    # network and name) with the settings that moved with them.
    publish: tuple[Publish, ...] | None = None  # as written; None: the mode's own (-p 3000:3000)
    placed_publish: tuple[Publish, ...] | None = None
    volumes: tuple[str, ...] = ()  # -v values besides the socket, as written
    placed_volumes: tuple[str, ...] = ()
    placed_network: str | None = None  # the cell's own network for the one the line names
    # a compose service on more networks than one: the others, as written and as the cell's
    more_networks: tuple[str, ...] = ()
    placed_more_networks: tuple[str, ...] = ()
    subnets: dict[str, tuple[str, str]] = field(default_factory=dict)  # a network's fixed subnet and gateway
    user: str | None = None
    flags: tuple[tuple[str, str], ...] = ()  # further options as written (--hostname, --cap-add, ...)
    person_name: str | None = None  # the container name as written
    person_command: tuple[str, ...] = ()  # the command as written, after the image
    moved_env: dict[str, str] = field(default_factory=dict)  # settings that moved with a port or path
    env_files: tuple[str, ...] = ()  # a deployment's env files as written (`--env-file` in the line people read)
    person_port: int = APP_PORT  # the host port the person reaches the API at (APP_PORT_TOKEN in their line)
    placement: tuple[str, ...] = ()  # what the harness changed for the cell, in words (the report)
    # the app publishes no port (a proxy on its network reaches it): the harness reaches the
    # app at its address on this network of the cell's
    reach_at: str | None = None
    # The deployment publishes ports, but not the one the app listens on (why, in words), and
    # the cell's host port for the one a person would reach it at (None: none written)
    not_published: str | None = None
    user_port: int | None = None

    def publishes(self, placed: bool) -> tuple[Publish, ...]:
        if self.network_mode == "host" or (self.headless and self.publish is None):
            return ()  # a built-in headless or CLI cell publishes nothing; a user's line, what it publishes
        chosen = self.placed_publish if placed else self.publish
        if chosen is not None:
            return chosen
        if not placed:
            return (Publish(self.listen_port, self.person_port),)
        # Loopback only unless the generation's runtime calls the app back (publish_all).
        return (Publish(self.listen_port, self.host_port, "0.0.0.0" if self.publish_all else "127.0.0.1"),)

    def container_env(self) -> dict[str, str]:
        """The env the container gets: the harness's own, then what a person sets, with the
        app's port filled in where a setting names it."""
        port = str(self.host_port if self.host_port is not None else APP_PORT)
        env = {k: reveal(v).replace(APP_PORT_TOKEN, port) for k, v in {**self.harness_env, **self.env}.items()}
        return {**env, **{k: reveal(v) for k, v in self.moved_env.items()}}  # real values: for the container only

    def options(self, placed: bool, secrets: frozenset[str] = frozenset(),
                name: str = "openhands-app") -> list[Option]:
        """The container as `docker run` options: as a person runs it, or (`placed`) as the
        harness does. In a person's line a secret is named, never valued (`-e NAME`, or the
        `--env-file` it was written in), so the line still runs where the user's settings are."""
        if placed:
            opts: list[Option] = [("-e", f"{k}={v}") for k, v in self.container_env().items()]
        else:
            opts = self._person_env(secrets)
        if self.socket is not None:
            opts.append(("-v", f"{self.socket}:{DOCKER_SOCKET}"))
        opts += [("-v", v) for v in (self.placed_volumes if placed else self.volumes)]
        if self.network_mode:
            opts.append(("--network", self.network_mode))
        opts += [("-p", p.option()) for p in self.publishes(placed)]
        network = (self.placed_network or self.network) if placed else self.network
        if network:
            opts.append(("--network", network))
        # docker run takes --network again for each further network (Docker 25 on; before,
        # `docker network connect` after the start); the harness connects them before the app starts
        opts += [("--network", n) for n in (self.placed_more_networks if placed else self.more_networks)]
        hosts = {**self.extra_hosts, **self.moved_hosts} if placed else self.extra_hosts
        opts += [("--add-host", f"{h}:{ip}") for h, ip in hosts.items()]
        if self.user is not None:
            opts.append(("-u", self.user))
        opts += self.flags
        opts.append(("--name", name if placed or self.person_name is None else self.person_name))
        return opts

    def _person_env(self, secrets: frozenset[str]) -> list[Option]:
        """The settings of the line people read: an env file as written, then each setting by
        value, or by name alone when secret; one read from an env file is that file's."""
        opts: list[Option] = [("--env-file", f) for f in self.env_files]
        for k, v in self.env.items():
            if isinstance(v, Secret) and v.origin in self.env_files:
                continue
            if k in secrets or is_secret(k, v):
                opts.append(("-e", k))
            else:
                opts.append(("-e", f"{k}={v.replace(APP_PORT_TOKEN, str(self.person_port))}"))
        return opts

    def daemon(self) -> str | None:
        """How the app placed by the harness reaches a Docker daemon to start its runtime with
        (a socket mounted, DOCKER_HOST), in words; None: it was given none."""
        for flag, value in self.options(placed=True):
            source, _, target = value.partition(":")
            if flag == "-v" and (target.split(":")[0] == DOCKER_SOCKET or source.endswith("/docker.sock")):
                return f"the socket {source} mounted at {target.split(':')[0]}"
        host = self.container_env().get("DOCKER_HOST")
        return f"DOCKER_HOST={host}" if host else None

    def argv(self) -> list[str]:
        """What follows the image: the headless entry point, or the command the mode needs."""
        return list(self.headless or self.command or self.person_command or [])

    def docker_run(self, secrets: frozenset[str] = frozenset(), name: str = "openhands-app") -> str:
        """The equivalent command for a person, with secret values left as placeholders."""
        parts = ["docker", "run", "-it", "--rm"]
        for flag, value in self.options(placed=False, secrets=secrets, name=name):
            parts += [flag, value] if value else [flag]  # --privileged takes none
        parts += [self.image, *(self.person_command or self.headless or ())]  # a user's command: as written
        line = " ".join(quote(p) for p in parts)
        made = [n for n in (self.network, *self.more_networks) if n]
        return " && ".join([*(f"docker network create {_subnet_flags(self.subnets.get(n))}{shlex.quote(n)}"
                              for n in made), line])


def _subnet_flags(subnet: tuple[str, str] | None) -> str:
    return f"--subnet {subnet[0]} --gateway {subnet[1]} " if subnet else ""


class ModeSpec(Protocol):
    """What a cell needs of its mode: a built-in Mode below, or a user's deployment
    (harness/deployments), which is a mode of the same kind."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def rank(self) -> int: ...

    @property
    def why(self) -> str: ...

    @property
    def network(self) -> Literal["default", "host", "own"]: ...

    @property
    def networks(self) -> tuple[str, ...]: ...

    @property
    def places_ports(self) -> bool: ...  # the mode moves published host ports itself

    @property
    def shares_host_ports(self) -> bool: ...  # the app is on the host network

    def fixed_app_port(self, gen: Generation) -> int | None: ...  # the app's host port, where none other works

    def launch(self, gen: Generation, *, image: str, env: dict[str, str], host_port: int | None,
               networks: dict[str, str] | None = None, site: CellSite | None = None) -> AppLaunch: ...


def fixed_callback(gen: Generation) -> bool:
    """The sandbox calls the app back at a host port no setting moves (1.0, 1.1)."""
    return gen.callback and not gen.callback_port_env


def fixed_host_ports(mode: ModeSpec, gen: Generation) -> tuple[int, ...]:
    """Host ports a cell binds whatever it is told, so one cell at a time: a runtime's on the
    host network; the app's where its sandbox calls it back at a port no setting moves."""
    runtime = gen.host_network_ports if mode.shares_host_ports else ()
    app = mode.fixed_app_port(gen)
    return (*runtime, *((app,) if app else ()), *getattr(mode, "host_ports", ()))


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

    @property
    def networks(self) -> tuple[str, ...]:
        """The networks a cell of this mode creates for itself (by their names in the mode)."""
        return (OWN_NETWORK,) if self.network == "own" else ()

    @property
    def places_ports(self) -> bool:
        return False

    def fixed_app_port(self, gen: Generation) -> int | None:
        return gen.callback_port_default if fixed_callback(gen) else None

    def launch(self, gen: Generation, *, image: str, env: dict[str, str], host_port: int | None,
               networks: dict[str, str] | None = None, site: CellSite | None = None) -> AppLaunch:
        """The app container for a cell of this mode and generation. `host_port` None lets
        Docker pick the published port, where the generation allows it; `networks` maps the
        mode's networks to the cell's (a built-in mode needs nothing of `site`)."""
        network = (networks or {}).get(OWN_NETWORK)
        if self.network == "own" and network is None:
            raise ValueError(f"{self.name} needs the cell's network name")
        # An app that starts no container has no use for the alias: only the mode that is about
        # it (host-gateway, the app server's documented line carried over) keeps it there.
        alias = self.add_host_gateway and (gen.starts_containers or self.network == "default")
        extra_hosts = dict(HOST_GATEWAY) if alias else {}
        # The daemon, as the documented command gives it: only to an app that starts containers.
        daemon = {} if gen.starts_containers else {"socket": None}
        if self.network == "host":
            if host_port is None:
                raise ValueError("on the host network the app listens on the host port itself")
            # A release whose sandbox cannot join the host network (generations.Generation.before)
            alone = ("this release's sandbox cannot join the host network: the app is on it, its sandbox "
                     "on the default bridge",) if gen.callback and not gen.host_network_env else ()
            # Its port: the app's own setting where it has one (a person's line keeps the default),
            # else the command that starts it (app_command).
            port = {"harness_env": {gen.port_env: str(host_port)}} if gen.port_env else \
                {"command": app_command(gen, host_port)}
            launch = AppLaunch(self.name, image, {**gen.host_network_env, **env}, host_port, host_port,
                               network_mode="host", extra_hosts=extra_hosts, placement=alone,
                               person_port=gen.app_port, **port, **daemon)  # type: ignore[arg-type]
        else:
            launch = AppLaunch(self.name, image, env, gen.app_port, host_port, extra_hosts=extra_hosts,
                               network=network if self.network == "own" else None, person_port=gen.app_port,
                               **daemon)  # type: ignore[arg-type]
        if gen.callback:
            if launch.host_port is None:
                raise ValueError(f"{gen.name} calls the app back: its port must be chosen before it starts")
            # The sandbox calls back host.docker.internal:SANDBOX_HOST_PORT (default 3000).
            port_env = {gen.callback_port_env: str(launch.host_port)} if gen.callback_port_env else {}
            launch = replace(launch, publish_all=True, harness_env=port_env)
        return launch


@dataclass(frozen=True)
class ProcessMode(Mode):
    """A mode whose launch is a host process, not a container: the native install, run by its
    own launcher on this machine (harness/cells/native.py runs its cells). On the host's own
    network, so the ports its launcher binds whatever it is told are `host_ports` (besides the
    generation's host_network_ports)."""

    host_ports: tuple[int, ...] = ()
    host_process: bool = True

    def launch(self, gen: Generation, *, image: str, env: dict[str, str], host_port: int | None,
               networks: dict[str, str] | None = None, site: CellSite | None = None) -> AppLaunch:
        raise ValueError(f"{self.name} starts a host process, not a container (harness/cells/native.py)")


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("bridge", "the default bridge, socket mounted, no --add-host", rank=3,
         why="the default bridge without --add-host", network="default", add_host_gateway=False),
    Mode("host", "the documented command with --network host", rank=2,
         why="the documented command with --network host", network="host"),
    Mode("custom-network", "the documented command on a user-defined bridge network of the cell's own", rank=1,
         why="the documented command on a Docker network of its own", network="own"),
    Mode("host-gateway", "the documented command as is", rank=0,
         why=DOCUMENTED, network="default"),
    # Agent Canvas's npm launcher (`npx @openhands/agent-canvas@V`): its static server on 3001
    # (scripts/dev-with-automation.mjs, preferredVitePort), besides the agent-server's and
    # automation's 18000 and 18001 (Generation.host_network_ports).
    ProcessMode("native", "npx @openhands/agent-canvas@VERSION on this machine, no container", rank=4,
                why="the native install (npx) on this machine", network="host", add_host_gateway=False,
                host_ports=(3001,)),
)}


def rank(name: str, gen: Generation | None) -> int:
    """A mode's place in the recommendation for a generation: its documented command first
    (Generation.documented_mode), then by Mode.rank; a mode not known here last."""
    if name not in MODES:
        return len(MODES)
    order = sorted(MODES, key=lambda n: (gen is not None and n != gen.documented_mode, MODES[n].rank))
    return order.index(name)


def why(name: str, gen: Generation | None) -> str | None:
    """The recommendation's reason for picking a mode, for a generation."""
    if gen is not None and name == gen.documented_mode:
        return DOCUMENTED
    return MODES[name].why if name in MODES else None


def get(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise InputError(f"unknown mode {name!r} (known: {', '.join(MODES)})") from None
