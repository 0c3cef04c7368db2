"""Your own deployment as a cell (docs/deployments.md): a compose service or a `docker run`
line, named in a matrix (`[deployments.NAME]`), is a mode like the built-in ones. Its cells
`TAG-NAME` run each target's image with everything else as written; the harness only places
the deployment on this machine without touching anything of the user's:

- each published host port is a free port of the cell's (the API's too), and every setting
  that names that port moves with it (OH_WEB_URL, SANDBOX_HOST_PORT, a URL pattern);
- each host path or named volume it mounts is a temporary folder of the cell's, at the same
  container path, and a setting that names the host path (WORKSPACE_MOUNT_PATH) moves with it;
  the daemon's socket, where it mounts one, is the socket of the daemon the cell runs on (a
  deployment that mounts none gets none: what the user left out is the question);
- its networks are networks of the cell's own; its container name is the cell's;
- for 0.x, the runtime image setting names the target's runtime image.

Each change is said in the cell's notes, and the `docker run` line shown is the deployment as
written, with the target's image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness import endpoint, generations
from harness.deployments import compose, dockerrun
from harness.deployments.compose import ComposeFiles, Runner
from harness.deployments.spec import APP_CONTAINER_PORT, Port, ServiceSpec, Volume, entry_point, refused_command
from harness.endpoint import app_socket, docker_socket
from harness.errors import InputError, PlacementError
from harness.generations import Generation
from harness.modes import AppLaunch, CellSite, Publish, app_command, fixed_callback
from harness.secrets import like

KEYS = frozenset({"compose", "service", "docker_run", "docker_run_file", "env"})


@dataclass(frozen=True)
class Deployment:
    """A user's deployment, as a mode of the matrix (modes.ModeSpec)."""

    name: str
    origin: str  # in words: which file (and service), or which line
    kind: Literal["compose", "docker_run"]
    service: ServiceSpec
    source: str = ""  # the compose file or the file holding the line, for the fix as a diff
    service_name: str = ""
    line: str = field(default="", repr=False)  # a docker run line written in the matrix itself
    # The texts of the files read (compose, env files, .env), by path: the workers get them
    # from the controller and never read the user's files themselves.
    files: dict[str, str] = field(default_factory=dict, repr=False)  # (their values: never in a repr)
    rank: int = -1  # your own deployment, as it is, asks least of anyone: nothing to change

    @property
    def entrypoint(self) -> str:
        """What the line runs (spec.entry_point): its cells are that entry point's, no other."""
        return entry_point(self.service.command)

    @property
    def api_host_port(self) -> int:
        """The host port the user reaches the app's API at, as written (3000 on the host network)."""
        port = self.service.api_port()
        return port.host if port is not None and port.host is not None else APP_CONTAINER_PORT

    @property
    def summary(self) -> str:
        return f"your deployment {self.name} ({self.origin})"

    @property
    def why(self) -> str:
        return f"your own deployment {self.name} as you run it ({self.origin})"

    @property
    def network(self) -> Literal["default", "host", "own"]:
        if self.service.network_mode == "host":
            return "host"
        return "own" if self.service.networks else "default"

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.service.networks)

    @property
    def places_ports(self) -> bool:
        return True

    @property
    def shares_host_ports(self) -> bool:
        return self.network == "host"

    @property
    def api_on_loopback(self) -> bool:
        """The app's port is published on a loopback address only (`127.0.0.1:3000:3000`)."""
        port = self.service.api_port()
        return port is not None and port.address.startswith("127.")

    def written_app_port(self) -> Port | None:
        """The published port a person reaches the app at, as written: the one to an OpenHands
        app's port (3000, 8000), else the first."""
        known = {g.app_port for g in generations.GENERATIONS.values()}
        return next((p for p in self.service.ports if p.container in known), None) or \
            (self.service.ports[0] if self.service.ports else None)

    def changed(self, extra_hosts: dict[str, str], network_mode: str | None = None,
                also_publish: str | None = None, volumes: tuple[str, ...] = (),
                republish: int | None = None) -> Deployment:
        """This deployment with a remedy's change to its container (remedies.Change): hosts it
        gains; the host network instead of its ports and networks, as compose requires; the
        app's port published on one more address; mounts it gains (the Docker socket)."""
        s = replace(self.service, extra_hosts={**self.service.extra_hosts, **extra_hosts},
                    volumes=(*self.service.volumes, *(compose.short_volume(v, Path("/")) for v in volumes)))
        if network_mode == "host":
            s = replace(s, network_mode="host", ports=(), networks=())
        if also_publish and (api := s.api_port()) is not None:
            s = replace(s, ports=(*s.ports, replace(api, address=also_publish)))
        if republish is not None and (written := self.written_app_port()) is not None:
            s = replace(s, ports=tuple(replace(p, container=republish) if p == written else p for p in s.ports))
        return replace(self, service=s)

    def fixed_app_port(self, gen: Generation) -> int | None:
        """Where the sandbox calls the app back at a port no setting moves, the app keeps the
        host port it is published on as written: moved, its callbacks would not be yours."""
        if not fixed_callback(gen):
            return None
        if self.shares_host_ports:
            return APP_CONTAINER_PORT
        api = self.service.api_port()
        return api.host if api is not None else None

    def launch(self, gen: Generation, *, image: str, env: dict[str, str], host_port: int | None,
               networks: dict[str, str] | None = None, site: CellSite | None = None) -> AppLaunch:
        if host_port is None or site is None:
            raise ValueError("a deployment's cell chooses its ports and folders")
        return _place(self, gen, image, env, host_port, networks or {}, site)


def _place(d: Deployment, gen: Generation, image: str, env: dict[str, str], api_port: int,
           networks: dict[str, str], site: CellSite) -> AppLaunch:
    s = d.service
    said: list[str] = []
    # What a person sets: the deployment's environment, then the matrix's (and --app-env);
    # the target's runtime image comes first in `env` and wins over the deployment's own.
    person_env = {**s.environment, **{k: v for k, v in env.items() if k != gen.runtime_image_env}}
    if gen.runtime_image_env and gen.runtime_image_env in env:
        mine = s.environment.get(gen.runtime_image_env)
        person_env[gen.runtime_image_env] = env[gen.runtime_image_env]
        if mine and mine != env[gen.runtime_image_env]:
            said.append(f"{gen.runtime_image_env}: yours ({mine}) is the target's runtime image for this cell")
    moves: dict[int, int] = {}  # a host port as written -> the cell's
    person_publish, placed_publish = [], []
    app_port = gen.app_port  # where this release's app listens in its container
    for p in s.ports:
        placed = api_port if p.container == app_port else site.free_port()
        if p.host is not None:
            moves[p.host] = placed
        person_publish.append(Publish(p.container, p.host, p.address))
        # As written where an address is given; else loopback, unless the sandbox calls the
        # app back (it comes from the bridge gateway, as to any port published on every address)
        # or the daemon is remote (the harness reaches its host from this machine)
        address = p.address or ("0.0.0.0" if gen.callback or endpoint.remote() else "127.0.0.1")
        if not _wildcard(address) and not address.startswith("127.") and not site.local(address):
            said.append(f"{address}:{p.host}:{p.container}: {address} is not an address of this machine; published "
                        "on 127.0.0.1 for this cell, which the bridge gateway does not reach, as it does not reach "
                        f"{address} on your host")
            address = "127.0.0.1"
        placed_publish.append(Publish(p.container, placed, address))
    reach_at: str | None = None
    serves = d.entrypoint == "api"  # a headless process or the CLI has no API to reach
    unpublished = None
    if serves and s.network_mode != "host" and s.ports and s.api_port(app_port) is None:
        # It publishes ports, but not the one this release listens on: what you reach is nothing.
        written = s.api_port() or s.ports[0]
        unpublished = (f"your deployment publishes {_shown_port(written)}, but {gen.title.split(':')[0]} listens "
                       f"on {app_port} in its container, which it does not publish", moves.get(written.host or 0))
    elif serves and s.network_mode != "host" and s.api_port(app_port) is None:
        # behind a proxy on its network: the harness reaches the app where the proxy does
        names = [n.name for n in s.networks]
        reach_at = networks.get(names[0], names[0]) if names else "bridge"
        said.append(f"the app's port {app_port} is published nowhere: the harness reaches its API at the "
                    f"app's address on {'network ' + names[0] if names else 'the default bridge'}, as a proxy "
                    "there does (your browser reaches it through that proxy)")
    api = [x for x in placed_publish if x.container == app_port]
    if api and not any(_wildcard(x.address) or x.address.startswith("127.") for x in api):
        # published on one address of this machine only (the gateway, say): the harness reaches
        # the API on loopback, so it is published there too, where no container reaches it
        placed_publish.append(Publish(app_port, api_port, "127.0.0.1"))
        said.append(f"the app's port is also published on 127.0.0.1:{api_port}, where the harness reaches its API")
    command: list[str] | None = None
    moved_port: dict[str, str] = {}
    if serves and s.network_mode == "host":  # the app listens on the host's port itself: the cell's port instead
        moves[app_port] = api_port
        if gen.port_env:  # its own setting moves it (Agent Canvas's PORT), its command stays yours
            moved_port[gen.port_env] = str(api_port)
            said.append(f"{gen.port_env}={api_port}: the app's port on the host network for this cell")
        else:
            command = app_command(gen, api_port)
            said.append(f"the app's command is its image's own with the cell's port: {' '.join(command)}")
    moved_env = {**_move_ports(person_env, moves, said), **moved_port}
    if gen.callback and gen.callback_port_env and gen.callback_port_env not in person_env:
        default = gen.callback_port_default  # the sandbox calls back this port, unless told another
        if default in moves:
            moved_env[gen.callback_port_env] = str(moves[default])
            said.append(f"{gen.callback_port_env}: its default {default} names host port {default}, "
                        f"which is {moves[default]} for this cell")
        elif site.listening(default):
            closed = site.free_port()
            moved_env[gen.callback_port_env] = str(closed)
            said.append(f"{gen.callback_port_env}: its default {default} is in use on this machine by something "
                        f"else; the cell's sandbox calls back {closed}, where nothing listens, as at {default} "
                        "on a host where it is free")
    for host, placed in moves.items():
        if host != placed:
            said.append(f"host port {host} is {placed} for this cell")
    person_volumes, placed_volumes = [], []
    folders: dict[str, str] = {}  # host path as written -> the cell's folder
    for v in s.volumes:
        if v.is_socket:
            person_volumes.append(_volume_option(v, v.source))
            placed_volumes += _place_socket(v, moved_env, said)
            continue
        if v.kind == "bind" and v.source and os.path.expanduser(v.source) == v.target:
            # A folder mounted at its own path stays at it: a process in the container may hand
            # that path to the daemon for another container's mount (Docker in Docker).
            made = site.same_path(v.target)
            if made is None:
                raise PlacementError(f"{v.source} is mounted at its own path, and a process in the container may "
                                     "hand that path to the daemon: the cell would have to use this machine's "
                                     f"{v.source}, which exists here, and write into it; it is not run")
            person_volumes.append(_volume_option(v, v.source))
            placed_volumes.append(_volume_option(v, made))
            said.append(f"{v.source} (bind, at its own path) is made on this machine for this cell, open to the "
                        "app's user, and removed after it")
            continue
        folder = site.scratch(f"{v.source or 'anonymous volume'} at {v.target}")
        if v.kind == "bind":
            folders[os.path.expanduser(v.source)] = folder
        person_volumes.append(_volume_option(v, v.source))
        placed_volumes.append(_volume_option(v, folder))
        if v.source:
            said.append(f"{v.source} ({v.kind}) is a temporary folder at {v.target} for this cell")
            _move_path(person_env, moved_env, v.source, folder, said)
    _place_runtime_paths(person_env, moved_env, folders, site, said)
    names = [n.name for n in d.service.networks]
    network, more = (names[0], names[1:]) if names else (None, [])
    placed_network = networks.get(network) if network else None
    for name in names:
        if networks.get(name):
            said.append(f"network {name} is the cell's own {networks[name]}")
    moved_hosts = _move_subnets(d, networks, site, person_env, moved_env, said)
    if s.container_name:
        said.append(f"container_name {s.container_name} is the cell's own name")
    said += s.notes
    return AppLaunch(
        mode=d.name, image=image, env=person_env, listen_port=api_port if s.network_mode == "host"
        else app_port, host_port=api_port,
        network_mode="host" if s.network_mode == "host" else None,
        network=_shown_network(d, network), extra_hosts=dict(s.extra_hosts), moved_hosts=moved_hosts, command=command,
        more_networks=tuple(more), placed_more_networks=tuple(networks[n] for n in more),
        subnets={n.name: (n.subnet, n.gateway) for n in s.networks if n.subnet},
        publish_all=False, publish=tuple(person_publish), placed_publish=tuple(placed_publish),
        volumes=tuple(person_volumes), placed_volumes=tuple(placed_volumes), placed_network=placed_network,
        user=s.user, flags=s.flags, person_name=s.container_name, person_command=tuple(s.command or ()),
        env_files=s.env_files,
        socket=None,  # the socket is one of its volumes, where it mounts one, as written
        moved_env=moved_env,
        placement=tuple(said), person_port=d.api_host_port, reach_at=reach_at,
        not_published=unpublished[0] if unpublished else None,
        user_port=unpublished[1] if unpublished else None,
    )


def _shown_port(p: Port) -> str:
    return ":".join(str(x) for x in (p.address, p.host, p.container) if x)


def _place_socket(v: Volume, moved_env: dict[str, str], said: list[str]) -> list[str]:
    """The socket the user mounts is the socket of the daemon the cell runs on, at the same
    container path; on a tcp:// daemon, whose host's socket cannot be mounted from here, the
    app is told DOCKER_HOST instead. A deployment that mounts none gets none (docs/deployments.md)."""
    if app_socket() is None:
        moved_env.update(endpoint.app_env())
        said.append(f"{v.source}:{v.target}: not mounted; the app reaches the daemon the cell runs on "
                    f"at DOCKER_HOST={endpoint.app_env()['DOCKER_HOST']}")
        return []
    if v.source != docker_socket():
        said.append(f"{v.source}:{v.target}: the socket of the daemon the cell runs on, {docker_socket()}")
    return [_volume_option(v, docker_socket())]


def _move_subnets(d: Deployment, networks: dict[str, str], site: CellSite, env: dict[str, str],
                  moved_env: dict[str, str], said: list[str]) -> dict[str, str]:
    """A network whose subnet the file fixes (ipam) is the cell's own, on a subnet the daemon
    chose (two cells cannot share one): every extra host and setting that names an address of
    the file's subnet (its gateway, as host.docker.internal often is) names the same place in
    the cell's. Returns the extra hosts that moved."""
    hosts: dict[str, str] = {}
    for net in d.service.networks:
        placed = site.subnet(networks[net.name]) if net.subnet and networks.get(net.name) else None
        if placed is None:
            continue
        moved = _subnet_mover(net.subnet, net.gateway, *placed)
        said.append(f"network {net.name}'s subnet {net.subnet} (gateway {net.gateway}) is {placed[0]} (gateway "
                    f"{placed[1]}) for this cell, as the daemon chose it")
        for host, ip in {**d.service.extra_hosts, **hosts}.items():
            if moved(ip) != ip:
                hosts[host] = moved(ip)
                said.append(f"extra host {host}:{ip} moved with its subnet: {hosts[host]}")
        for key, value in env.items():
            current = moved_env.get(key, value)
            if moved(current) != current:
                moved_env[key] = like(value, moved(current))
                said.append(f"{key} moved with its subnet: {moved_env[key]}")
    return hosts


def _subnet_mover(subnet: str, gateway: str, cell_subnet: str, cell_gateway: str) -> Callable[[str], str]:
    """Rewrites each IPv4 address of `subnet` in a text to the same place in the cell's: the
    gateway to its gateway, any other by its offset (kept when the cell's is too small)."""
    import ipaddress

    mine, theirs = ipaddress.ip_network(subnet), ipaddress.ip_network(cell_subnet, strict=False)

    def move(m: re.Match[str]) -> str:
        ip = ipaddress.ip_address(m.group(1))
        if ip not in mine:
            return m.group(1)
        if ip == ipaddress.ip_address(gateway):
            return cell_gateway
        offset = int(ip) - int(mine.network_address)
        return str(theirs.network_address + offset) if offset < theirs.num_addresses else m.group(1)

    return lambda text: re.sub(r"(?<![\d.])(\d+\.\d+\.\d+\.\d+)(?![\d.])", move, text)


def _shown_network(d: Deployment, network: str | None) -> str | None:
    """The network in the line people read: compose's project network is `<folder>_default`."""
    if network is None:
        return None
    if d.kind == "compose" and network == "default":
        return f"{Path(d.source).parent.name or 'project'}_default"
    return network


def _volume_option(v: Volume, source: str) -> str:
    return f"{source}:{v.target}" + (":ro" if v.read_only else "") if source else v.target


def _move_ports(env: dict[str, str], moves: dict[int, int], said: list[str]) -> dict[str, str]:
    """The settings that name a moved host port (the port alone, or `:PORT` in a URL)."""
    out: dict[str, str] = {}
    for key, value in env.items():
        new = value
        for host, placed in moves.items():
            if host == placed:
                continue
            new = str(placed) if new.strip() == str(host) else re.sub(rf":{host}(?![0-9])", f":{placed}", new)
        if new != value:
            out[key] = like(value, new)  # a secret's moved value is as secret
            said.append(f"{key} moved with its port: {new}")
    return out


def _move_path(env: dict[str, str], moved: dict[str, str], source: str, folder: str, said: list[str]) -> None:
    """A setting that names a host path the cell replaced (WORKSPACE_MOUNT_PATH) names the folder."""
    for key, value in env.items():
        current = moved.get(key, value)
        for form in {source, os.path.expanduser(source)}:
            if (rebased := _rebase(current, form, folder)) is not None:
                moved[key] = like(value, rebased)
                said.append(f"{key} moved with {source}: {moved[key]}")
                break


def _rebase(path: str, source: str, folder: str) -> str | None:
    """`path` with `source` (the path itself or a folder above it) replaced by `folder`; None
    when `path` is not under `source`."""
    if path == source or path.startswith(source.rstrip("/") + "/"):
        return folder + path[len(source.rstrip("/")):]
    return None


# Host paths OpenHands mounts into its runtime itself, not into the app: SANDBOX_VOLUMES
# (`host:container[:mode]`, comma-separated), and for 0.x the workspace's host path.
RUNTIME_PATHS = ("SANDBOX_VOLUMES", "WORKSPACE_MOUNT_PATH", "WORKSPACE_BASE")


def _place_runtime_paths(env: dict[str, str], moved: dict[str, str], folders: dict[str, str], site: CellSite,
                         said: list[str]) -> None:
    """Each host path a setting has OpenHands mount into its runtime is a temporary folder of
    the cell's, as the app's own mounts are: the agent's work never lands in the user's folder."""
    for key in RUNTIME_PATHS:
        value = moved.get(key, env.get(key))
        if not value:
            continue
        entries = value.split(",") if key == "SANDBOX_VOLUMES" else [value]
        out = []
        for entry in entries:
            host, sep, rest = entry.partition(":") if key == "SANDBOX_VOLUMES" else (entry, "", "")
            host = like(value, host)  # said in a note: as secret as the setting
            full = os.path.expanduser(host)
            # a folder the app mounts too: the same folder of the cell's
            under = next((r for src, f in folders.items() if (r := _rebase(full, src, f)) is not None), None)
            placed = any(_rebase(full, f, f) is not None for f in folders.values())
            if under is not None:
                host = under
            elif full.startswith("/") and not placed:
                folders[full] = site.scratch(f"{host} in {key}")
                said.append(f"{key}: {host}, which OpenHands mounts into its runtime, is a temporary folder "
                            f"{folders[full]} for this cell")
                host = folders[full]
            out.append(host + sep + rest)
        if ",".join(out) != value:
            moved[key] = like(value, ",".join(out))


def _wildcard(address: str) -> bool:
    return address in ("", "0.0.0.0", "::")


def load(name: str, table: dict[str, Any], matrix_path: str, files: dict[str, str] | None = None,
         run_command: Runner | None = None) -> Deployment:
    """The deployment of a matrix's `[deployments.NAME]` table: read (or, in a worker, from
    the texts the controller read) and checked, every problem one line naming the file;
    `run_command`: what runs a `docker run` line's read-only `$(...)` commands (compose.Runner)."""
    where = f"{matrix_path}: deployments.{name}"
    for key in table:
        if key not in KEYS:
            raise InputError(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(KEYS))})")
    kinds = [k for k in ("compose", "docker_run", "docker_run_file") if k in table]
    if len(kinds) != 1:
        raise InputError(f"{where}: name exactly one of compose, docker_run, docker_run_file")
    folder = Path(matrix_path).parent
    reader = ComposeFiles(files, run_command)
    if kinds[0] == "compose":
        raw = table["compose"]
        given = [raw] if isinstance(raw, str) else raw
        if not isinstance(given, list) or not given or not all(isinstance(p, str) for p in given):
            raise InputError(f"{where}.compose: expected a path or a list of paths")
        paths = [folder / p for p in given]
        service = table.get("service")
        if service is not None and not isinstance(service, str):
            raise InputError(f"{where}.service: expected a service name")
        spec, chosen = compose.load(paths, service, reader)
        origin = f"{', '.join(str(p) for p in paths)}, service {chosen}"
        dep = Deployment(name, origin, "compose", spec, str(paths[0]), chosen)
    else:
        if kinds[0] == "docker_run_file":
            path = folder / str(table["docker_run_file"])
            line, origin, source = reader.read(path, "docker run file"), str(path), str(path)
        else:
            line, origin, source = str(table["docker_run"]), f"{matrix_path} deployments.{name}.docker_run", ""
        spec = dockerrun.parse(line, origin, folder, reader)
        dep = Deployment(name, origin, "docker_run", spec, source, line="" if source else line)
    _check(dep)
    return replace(dep, files=reader.texts)


def _check(d: Deployment) -> None:
    s = d.service
    if (why := refused_command(s.command)) is not None:
        raise InputError(f"{d.origin}: command {' '.join(s.command or ())}: {why}; the harness judges the app "
                         "server, `python -m openhands.core.main` (headless) and the `openhands` CLI")
    if d.entrypoint != "api":
        return  # no API: nothing of the harness's reaches a port of it
    known = sorted({g.app_port for g in generations.GENERATIONS.values()})
    if s.network_mode != "host" and s.ports and not any(s.api_port(port) for port in known):
        shown = ", ".join(f"{p.host}:{p.container}" if p.host else str(p.container) for p in s.ports)
        raise InputError(f"{d.origin}: ports: publishes {shown} but no port an OpenHands app listens on in its "
                         f"container ({' or '.join(map(str, known))}): neither you nor the harness could reach "
                         "its API there")
    if s.network_mode == "host" and s.command:
        raise InputError(f"{d.origin}: command: with the host network the harness must choose the app's port, "
                         "which a command of your own fixes")
    ports = [p.host for p in s.ports if p.host is not None]
    if len(set(ports)) != len(ports):
        raise InputError(f"{d.origin}: ports: a host port is published twice")


__all__ = ["Deployment", "Port", "ServiceSpec", "load"]
