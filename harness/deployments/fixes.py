"""A remedy that a real rerun proved, as a change to the user's own file: a unified diff of
the compose file (the service's `environment` gains or changes the entries, `extra_hosts`
gains names, `network_mode: host` replaces `ports` and `networks`; edited with ruamel.yaml's
round trip so the rest of the file, comments included, stays as written), or the user's
`docker run` line with the flags added (`-e`, `--add-host`, `--network host` instead of its
`-p` and `--network`)."""

from __future__ import annotations

import difflib
import io
import shlex
from typing import Any

from harness.deployments import Deployment, shell
from harness.deployments.spec import APP_CONTAINER_PORT, Port
from harness.modes import APP_PORT_TOKEN, Publish, quote


def fix(d: Deployment, env: dict[str, str], extra_hosts: dict[str, str] | None = None,
        network_mode: str | None = None, also_publish: str | None = None,
        volumes: list[str] | tuple[str, ...] = (), republish: int | None = None) -> str:
    """The change that applies a remedy to the deployment, as the user would make it."""
    port = APP_CONTAINER_PORT if network_mode == "host" else d.api_host_port
    shown = {k: v.replace(APP_PORT_TOKEN, str(port)) for k, v in env.items()}
    publish = f"{also_publish}:{d.api_host_port}:{APP_CONTAINER_PORT}" if also_publish else None
    moved = _moved_port(d, republish)
    if d.kind == "compose":
        return _compose_diff(d, shown, extra_hosts or {}, network_mode, publish, tuple(volumes), moved)
    return _docker_run_line(d, shown, extra_hosts or {}, network_mode, publish, tuple(volumes), moved)


def _moved_port(d: Deployment, container: int | None) -> tuple[Port, str] | None:
    """The published app port as written, and its mapping to `container` instead (`3000:8000`)."""
    written = d.written_app_port() if container is not None else None
    if written is None or container is None:
        return None
    return written, ":".join(str(x) for x in (written.address, written.host, container) if x)


def _same_port(value: str, port: Port) -> bool:
    """Whether a `ports:` entry or `-p` value as written is this published port."""
    try:
        return Publish.parse(str(value).split("/")[0]) == Publish(port.container, port.host, port.address)
    except ValueError:
        return False


def _compose_diff(d: Deployment, env: dict[str, str], hosts: dict[str, str], network_mode: str | None,
                  publish: str | None, volumes: tuple[str, ...], moved: tuple[Port, str] | None = None) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    before = d.files[d.source]
    # written back with the file's own indentation: its mappings', its lists' (dash and item)
    _, sequence, offset = load_yaml_guess_indent(before)
    keys = [len(line) - len(line.lstrip(" ")) for line in before.splitlines()
            if line.startswith(" ") and not line.lstrip().startswith(("-", "#"))]
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=min(keys) if keys else 2, sequence=sequence or 2, offset=offset or 0)
    doc: Any = yaml.load(before)
    service = doc["services"][d.service_name]
    _drop_resets(service)
    current = service.get("environment")
    if current is None:
        if env:  # a fix that sets nothing adds no key
            service["environment"] = dict(env)
    elif isinstance(current, list):
        for key, value in env.items():
            at = next((i for i, item in enumerate(current) if str(item).split("=", 1)[0] == key), None)
            if at is None:
                current.append(f"{key}={value}")
            else:
                current[at] = f"{key}={value}"
    else:
        for key, value in env.items():
            current[key] = value
    if hosts:
        mapped = service.get("extra_hosts")
        if mapped is None:
            service["extra_hosts"] = [f"{k}:{v}" for k, v in hosts.items()]
        elif isinstance(mapped, list):
            mapped.extend(f"{k}:{v}" for k, v in hosts.items())
        else:
            mapped.update(hosts)
    if volumes:
        service.setdefault("volumes", []).extend(volumes)  # (a file merged after it may hold the rest)
    if publish:
        service.setdefault("ports", []).append(publish)  # (a file merged after it may hold the rest)
    if moved is not None:
        ports = service.get("ports") or []
        for i, item in enumerate(ports):
            if isinstance(item, str) and _same_port(item, moved[0]):
                ports[i] = type(item)(moved[1])  # its quoting as written (ruamel's string kinds)
    if network_mode:
        for key in ("ports", "networks"):  # compose: network_mode excludes networks; host ignores ports
            service.pop(key, None)
        service["network_mode"] = network_mode
    out = io.StringIO()
    yaml.dump(doc, out)
    after = out.getvalue()
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=d.source, tofile=d.source))


def _drop_resets(service: Any) -> None:
    """A key tagged `!reset` is no key at all for compose: a fix writes a plain one in its
    place, never into the value compose throws away."""
    for key in ("environment", "extra_hosts", "ports", "networks", "network_mode"):
        if getattr(getattr(service.get(key), "tag", None), "value", None) == "!reset":
            del service[key]


_DROPPED_WITH_HOST = ("-p", "--publish", "--network", "--net")  # what --network host replaces


def _docker_run_line(d: Deployment, env: dict[str, str], hosts: dict[str, str], network_mode: str | None,
                     publish: str | None, volumes: tuple[str, ...], moved: tuple[Port, str] | None = None) -> str:
    """The user's script as they run it, with its `docker run` line edited in place: the
    flags added right after `docker run`, any earlier value of the same keys taken out, and
    every other character (continuations, quotes, `$(id -u)`) as written. The lines that set
    variables before it come along, as the line needs them; comments do not."""
    text = (d.files[d.source] if d.source else d.line).replace("\r\n", "\n")
    start, end, tail = shell.run_line(text)
    line = text[start:end]
    words = shell.spans(line)
    raw = [line[a:b] for a, b in words]
    cut: list[tuple[int, int]] = []  # spans of the line to take out: a flag, its value, the blank after
    skip = False
    for i, w in enumerate(raw):
        if skip:
            skip = False
            continue
        flag, _, attached = w.partition("=")
        value = _unquoted(attached or (raw[i + 1] if i + 1 < len(raw) else ""))
        if (flag in ("-e", "--env") and value.split("=", 1)[0] in env) or (
                network_mode and flag in _DROPPED_WITH_HOST) or (
                moved is not None and flag in ("-p", "--publish") and _same_port(value, moved[0])):
            last = i if attached else i + 1
            cut.append((words[i][0], words[last + 1][0] if last + 1 < len(words) else words[last][1]))
            skip = not attached
    added = [part for k, v in env.items() for part in ("-e", f"{k}={v}")]
    added += [part for k, v in hosts.items() for part in ("--add-host", f"{k}:{v}")]
    added += ["--network", network_mode] if network_mode else []
    added += ["-p", publish] if publish else []
    added += ["-p", moved[1]] if moved is not None else []
    added += [part for v in volumes for part in ("-v", v)]
    at = words[raw.index("run")][1]
    for a, b in sorted(cut, reverse=True):
        line = line[:a] + line[b:]
    line = line[:at] + "".join(" " + quote(w) for w in added) + line[at:]
    before, _, same_line = text[:start].rpartition("\n")
    kept = [ln for ln in before.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join([*kept, same_line + line.rstrip() + text[end:tail]])


def _unquoted(word: str) -> str:
    try:
        return " ".join(shlex.split(word))
    except ValueError:
        return word
