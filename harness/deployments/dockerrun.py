"""A `docker run` line as a deployment: expanded as the shell that runs it would (shell.py),
split as it splits it (shlex), read by an argparse parser of the flags the harness honours.
Any other flag, or a line that does not parse, is an input error naming it
(docs/deployments.md), before anything starts."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from harness.deployments import shell
from harness.deployments.compose import ComposeFiles, as_list, parse_port, read_env_file, short_volume
from harness.deployments.spec import FLAGS, Network, ServiceSpec
from harness.errors import InputError
from harness.secrets import conceal, secret


class _Parser(argparse.ArgumentParser):
    def __init__(self, where: str) -> None:
        super().__init__(prog="docker run", add_help=False, allow_abbrev=False, exit_on_error=False)
        self.where = where

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{self.where}: {message}")


def _parser(where: str) -> _Parser:
    p = _Parser(where)
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--network", "--net")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--name")
    p.add_argument("-u", "--user")
    p.add_argument("-h", "--hostname")
    p.add_argument("--privileged", action="store_true")
    for flag in ("--cap-add", "--cap-drop", "--group-add", "--security-opt"):
        p.add_argument(flag, action="append", default=[])
    # No bearing on a cell (it runs detached, is removed after, pulls nothing).
    for flag in ("-i", "--interactive", "-t", "--tty", "--rm", "-d", "--detach", "--init"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--pull")
    p.add_argument("--restart")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def parse(line: str, where: str, folder: Path, files: ComposeFiles,
          environ: Mapping[str, str] | None = None) -> ServiceSpec:
    env_in = dict(os.environ if environ is None else environ)
    run = shell.docker_run_words(line, env_in, folder, where, files.run)
    try:
        a = _parser(where).parse_args(run.words[2:])
    except argparse.ArgumentError as e:
        raise InputError(f"{where}: {e}") from None
    notes = list(run.notes)
    if run.stdin and (a.i or a.interactive):  # the container reads it, and a cell's app is given nothing
        raise InputError(f"{where}: line {run.line}: `{run.stdin}`: input the container reads (-i), which a cell "
                         "does not give it; the reader cannot follow it")
    if run.stdin:
        notes.append(f"`{run.stdin}`: input docker run does not pass to the container without -i")
    environment: dict[str, str] = {}  # each value a secret that remembers where it was written
    for path in a.env_file:
        full = Path(path) if Path(path).is_absolute() else folder / path
        environment.update(conceal(read_env_file(files.read(full, "env file"), env_in, str(full)), path))
    for item in a.env:
        key, found, value = item.partition("=")
        if found:
            environment[key] = secret(key, value, "-e")
        elif key in env_in:  # `-e KEY`: the value of the shell that runs the line
            environment[key] = secret(key, env_in[key], "-e")
    extra_hosts = {}
    for item in a.add_host:
        host, sep, ip = item.partition(":") if "=" not in item else item.partition("=")
        if not sep:
            raise InputError(f"{where}: --add-host {item}: expected HOST:IP")
        extra_hosts[host] = ip
    network_mode: str | None = None
    networks: tuple[Network, ...] = ()
    if a.network in ("host", "bridge"):
        network_mode = a.network
    elif a.network is not None:
        if a.network.startswith(("container:", "none")):
            raise InputError(f"{where}: --network {a.network}: only host, bridge or a network of your own "
                             "can be honoured")
        networks = (Network(a.network),)
    else:
        network_mode = "bridge"  # docker run's default: the default bridge
    return ServiceSpec(
        image=a.image, environment=environment, env_files=tuple(a.env_file),
        ports=tuple(parse_port(p, f"{where}: -p") for p in a.publish),
        network_mode=network_mode, networks=networks, extra_hosts=extra_hosts, user=a.user,
        volumes=tuple(short_volume(v, folder) for v in a.volume), container_name=a.name,
        command=tuple(a.command) if a.command else None,
        flags=tuple((flag, "" if value is True else str(value)) for flag in FLAGS
                    for value in as_list(getattr(a, flag[2:].replace("-", "_"))) if value),
        notes=tuple(notes),
    )
