"""A compose service as a deployment: the file (or files, merged) read with ruamel.yaml,
interpolated as compose interpolates, validated against the Compose Specification's JSON
Schema (the copy check-jsonschema ships), then the service's honoured keys read into a
ServiceSpec. Anything else the service sets is an input error naming the file, the service
and the key (docs/deployments.md), raised before anything starts.

ruamel.yaml, not PyYAML: compose reads YAML 1.2, where `22:22` is a string; PyYAML's YAML 1.1
reads it as the base-60 number 1342 and would turn a port mapping into nonsense.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.deployments.spec import FLAGS, Network, Port, ServiceSpec, Volume
from harness.errors import InputError

# The service keys the harness honours, and those with no bearing on a cell that it accepts.
HONOURED = frozenset({"image", "environment", "env_file", "ports", "networks", "network_mode", "extra_hosts",
                      "user", "volumes", "container_name", "command", *FLAGS.values()})
INERT = frozenset({"restart", "stdin_open", "tty", "init", "labels", "logging", "pull_policy",
                   "stop_grace_period", "stop_signal", "healthcheck", "expose"})
# Accepted, and said in the cell's notes: what the cell does not do of them.
SAID = {"depends_on": "the services it depends on ({}) are not started: the cell runs this service alone, "
                      "with the harness's LLM",
        "build": "its build is not run: each target's image stands in (an own-image cell runs the service's "
                 "image as this daemon has it)"}
TOP_LEVEL = frozenset({"services", "networks", "volumes", "name", "version"})
NETWORK_KEYS = frozenset({"driver", "name", "external", "labels", "ipam"})

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class ComposeFiles:
    """The texts of a deployment's files, by path: read from disk in the controller, handed
    to the workers as text (a worker never reads the user's files again)."""

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self.texts = dict(texts or {})
        self.read_here = texts is None

    def read(self, path: Path, what: str) -> str:
        key = str(path)
        if key not in self.texts:
            if not self.read_here:
                raise InputError(f"{path}: {what} was not handed to this worker")
            try:
                self.texts[key] = path.read_text(encoding="utf-8")
            except OSError as e:
                raise InputError(f"{path}: cannot read {what}: {e.strerror}") from None
            except UnicodeDecodeError as e:  # compose reads its files as UTF-8 too
                raise InputError(f"{path}: {what}: not UTF-8 text (byte {e.start})") from None
        return self.texts[key]

    def exists(self, path: Path) -> bool:
        return str(path) in self.texts or (self.read_here and path.is_file())


def interpolate(value: str, env: Mapping[str, str], where: str) -> str:
    """Compose's interpolation of one string: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, ${VAR:+other}, ${VAR+other}, and $$ for a literal $."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        b = _BRACED.fullmatch(m.group("braced"))
        if not b:
            raise InputError(f"{where}: invalid interpolation ${{{m.group('braced')}}}")
        name, op, arg = b.group("name"), b.group("op"), interpolate(b.group("arg") or "", env, where)
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else str(value)
        if op in (":?", "?"):
            if unset:
                raise InputError(f"{where}: {name}: {arg or 'required variable is not set'}")
            return str(value)
        if op in (":+", "+"):
            return "" if unset else arg
        return value or ""

    return _VAR.sub(one, value)


def _interpolate_all(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, list):
        return [_interpolate_all(v, env, where) for v in node]
    if isinstance(node, dict):
        return {k: _interpolate_all(v, env, f"{where}.{k}") for k, v in node.items()}
    return node


def _yaml(text: str, path: Path) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(text))
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{line}: {getattr(e, 'problem', None) or e}") from None


def _schema_error(doc: Any, path: Path) -> str | None:
    """The first way `doc` breaks the Compose Specification, as `key.path: message`."""
    import importlib.metadata

    import jsonschema
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema = get_builtin_schema("vendor.compose-spec")
    validator = jsonschema.Draft202012Validator(schema)
    # the deepest first: "ports: 3000 is not of type 'array'" says more than the service's
    # "unevaluated properties" that the same mistake also causes
    errors = sorted(validator.iter_errors(doc), key=lambda e: (-len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return None
    e = errors[0]
    where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
    version = importlib.metadata.version("check-jsonschema")
    return f"{path}: {where}: {e.message[:300]} (the Compose Specification, as check-jsonschema {version} ships it)"


def merge(base: Any, over: Any) -> Any:
    """Compose's merge of a later file over an earlier one, for the keys the harness reads:
    mappings merged key by key, `environment`/`extra_hosts` (list or mapping) by name,
    `ports` and `env_file` appended, `volumes` by target, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if k in out and k in ("environment", "extra_hosts"):
                out[k] = {**_as_mapping(out[k], "="), **_as_mapping(v, "=")}
            elif k in out and k in ("ports", "env_file") and isinstance(out[k], list | str):
                out[k] = [*as_list(out[k]), *[x for x in as_list(v) if x not in as_list(out[k])]]
            elif k in out and k == "volumes" and isinstance(out[k], list) and isinstance(v, list):
                later = {_volume_target(x) for x in v}
                out[k] = [x for x in out[k] if _volume_target(x) not in later] + v
            else:
                out[k] = merge(out[k], v) if k in out else v
        return out
    return over


def as_list(v: Any) -> list[Any]:
    """A compose value that may be one item or a list of them, as a list."""
    return v if isinstance(v, list) else [v]


def _as_mapping(v: Any, sep: str) -> dict[str, Any]:
    if isinstance(v, dict):
        return dict(v)
    out: dict[str, Any] = {}
    for item in v or []:
        key, found, val = str(item).partition(sep)
        if not found and sep == "=" and ":" in key and not key.startswith("["):  # extra_hosts "host:ip"
            key, _, val = key.partition(":")
            found = ":"
        out[key] = val if found else None
    return out


def _volume_target(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("target", ""))
    parts = str(v).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def load(paths: list[Path], service: str | None, files: ComposeFiles,
         environ: Mapping[str, str] | None = None) -> tuple[ServiceSpec, str]:
    """The service of `paths` (merged in order) as the harness runs it, and its name."""
    env = dict(os.environ if environ is None else environ)
    dot_env = paths[0].parent / ".env"  # compose's project .env: the environment wins over it
    if files.exists(dot_env):
        env = {**read_env_file(files.read(dot_env, "the compose project's .env"), env, str(dot_env)), **env}
    doc: Any = None
    for path in paths:
        raw = _yaml(files.read(path, "compose file"), path)
        if not isinstance(raw, dict):
            raise InputError(f"{path}: expected a compose file (a mapping with services)")
        raw = _interpolate_all(raw, env, str(path))
        if (err := _schema_error(raw, path)) is not None:
            raise InputError(err)
        doc = raw if doc is None else merge(doc, raw)
    assert isinstance(doc, dict)
    where = ", ".join(map(str, paths))
    for key in doc:
        if key not in TOP_LEVEL and not str(key).startswith("x-"):
            raise InputError(f"{where}: {key}: top-level key the harness cannot honour "
                             f"(it reads {', '.join(sorted(TOP_LEVEL))}; docs/deployments.md)")
    services = doc.get("services") or {}
    if service is None:
        if len(services) != 1:
            raise InputError(f"{where}: name the service to run (service = \"...\"): the file has "
                             f"{', '.join(services) or 'none'}")
        service = next(iter(services))
    if service not in services:
        raise InputError(f"{where}: service {service!r} is not in the file (services: {', '.join(services)})")
    body = services[service] or {}
    return _service(body, doc, f"{where}: services.{service}", paths[0].parent, files, env), service


def _service(body: dict[str, Any], doc: dict[str, Any], where: str, folder: Path, files: ComposeFiles,
             env: Mapping[str, str]) -> ServiceSpec:
    for key in body:
        if key not in HONOURED and key not in INERT and key not in SAID and not str(key).startswith("x-"):
            raise InputError(f"{where}.{key}: the harness cannot honour this key in a cell "
                             "(docs/deployments.md lists what it honours)")
    environment = _environment(body, where, folder, files, env)
    mode = body.get("network_mode")
    if mode is not None and mode not in ("host", "bridge"):
        raise InputError(f"{where}.network_mode: {mode!r}: only host and bridge can be honoured "
                         "(a service: or container: mode needs a container the harness does not run)")
    networks = _networks(body, doc, where) if mode is None else ()
    command = body.get("command")
    if isinstance(command, str):
        import shlex

        command = shlex.split(command)
    flags: list[tuple[str, str]] = []
    for flag, key in FLAGS.items():
        value = body.get(key)
        if flag == "--privileged":
            flags += [(flag, "")] if value else []
        elif value is not None:
            flags += [(flag, str(v)) for v in as_list(value)]
    depends = body.get("depends_on") or []
    notes = [f"{key}: " + SAID[key].format(", ".join(map(str, depends))) for key in SAID if key in body]
    return ServiceSpec(
        image=body.get("image"),
        environment=environment,
        ports=tuple(parse_port(p, f"{where}.ports[{i}]") for i, p in enumerate(body.get("ports") or [])),
        network_mode=mode,
        networks=networks,
        extra_hosts={k: str(v) for k, v in _as_mapping(body.get("extra_hosts") or [], "=").items()},
        user=None if body.get("user") is None else str(body["user"]),
        volumes=tuple(_volume(v, f"{where}.volumes[{i}]", folder, doc)
                      for i, v in enumerate(body.get("volumes") or [])),
        container_name=body.get("container_name"),
        command=tuple(str(c) for c in command) if command is not None else None,
        flags=tuple(flags), notes=tuple(notes),
    )


def read_env_file(text: str, env: Mapping[str, str], where: str) -> dict[str, str]:
    """An env file's variables: parsed by python-dotenv, each value interpolated as compose
    does (interpolate() above), from the environment and the file's own earlier lines, which
    win, as they do in compose."""
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    for key, raw in dotenv_values(stream=io.StringIO(text), interpolate=False).items():
        if raw is not None:
            values[key] = interpolate(raw, {**env, **values}, f"{where}: {key}")
    return values


def _environment(body: dict[str, Any], where: str, folder: Path, files: ComposeFiles,
                 env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate(as_list(body.get("env_file") or [])):
        path, required = (item, True) if isinstance(item, str) else (item.get("path"), item.get("required", True))
        if item is None or path is None:
            continue
        full = (folder / path) if not Path(path).is_absolute() else Path(path)
        if not files.exists(full):
            if required:
                raise InputError(f"{where}.env_file[{i}]: {full}: no such file")
            continue
        out.update(read_env_file(files.read(full, "env file"), env, str(full)))
    for key, value in _as_mapping(body.get("environment") or {}, "=").items():
        if value is None:  # `- KEY` / `KEY:`: the value of the environment compose runs in, if any
            if key in env:
                out[key] = env[key]
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def parse_port(p: Any, where: str) -> Port:
    if isinstance(p, dict):
        if p.get("protocol", "tcp") != "tcp":
            raise InputError(f"{where}.protocol: only tcp ports can be honoured")
        published = p.get("published")
        if published is not None and not str(published).isdigit():
            raise InputError(f"{where}.published: {published!r}: a port range cannot be honoured")
        return Port(int(p["target"]), int(published) if published is not None else None, str(p.get("host_ip") or ""))
    text = str(p)
    text, _, proto = text.partition("/")
    if proto and proto != "tcp":
        raise InputError(f"{where}: {p!r}: only tcp ports can be honoured")
    address = ""
    if text.startswith("["):  # [::1]:4000:3000
        address, _, text = text[1:].partition("]")
        text = text.removeprefix(":")
    parts = text.split(":")
    if "-" in text:
        raise InputError(f"{where}: {p!r}: a port range cannot be honoured")
    try:
        if len(parts) == 3:
            address, host, container = parts
        elif len(parts) == 2:
            host, container = parts
        else:
            host, container = "", parts[0]
        return Port(int(container), int(host) if host else None, address)
    except ValueError:
        raise InputError(f"{where}: {p!r}: not a port mapping ([[address:]host:]container)") from None


def _volume(v: Any, where: str, folder: Path, doc: dict[str, Any]) -> Volume:
    if isinstance(v, dict):
        kind = v.get("type", "volume")
        if kind not in ("bind", "volume"):
            raise InputError(f"{where}.type: {kind}: only bind and volume mounts can be honoured")
        source = str(v.get("source") or "")
        return Volume(_host_path(source, folder) if kind == "bind" else source, str(v["target"]),
                      bool(v.get("read_only")), kind)
    vol = short_volume(str(v), folder)
    if vol.kind == "volume" and vol.source and vol.source not in (doc.get("volumes") or {}):
        raise InputError(f"{where}: volume {vol.source!r} is not declared under the top-level volumes")
    return vol


def short_volume(text: str, folder: Path) -> Volume:
    """`[source:]target[:mode]`, as compose and docker run read it: a source that is a path
    (`/`, `.`, `~`) is a bind mount, relative to `folder`; a name is a named volume."""
    parts = text.split(":")
    if len(parts) > 2 and len(parts[0]) == 1 and parts[1][:1] in ("\\", "/"):  # C:\\work: Docker Desktop's host path
        parts = [f"{parts[0]}:{parts[1]}", *parts[2:]]
    if len(parts) == 1:  # an anonymous volume
        return Volume("", parts[0], kind="volume")
    source, target, *mode = parts
    read_only = bool(mode) and "ro" in mode[0].split(",")
    if source.startswith((".", "/", "~")) or source[1:2] == ":":
        return Volume(_host_path(source, folder), target, read_only, "bind")
    return Volume(source, target, read_only, "volume")


def _host_path(source: str, folder: Path) -> str:
    if source.startswith("~") or source[1:2] == ":":
        return source  # the user's home (or a Windows drive), as theirs: never touched, only named
    return str(Path(source) if source.startswith("/") else (folder / source))


def _networks(body: dict[str, Any], doc: dict[str, Any], where: str) -> tuple[Network, ...]:
    declared = doc.get("networks") or {}
    names: dict[str, Any] = ({n: None for n in body["networks"]} if isinstance(body.get("networks"), list)
                             else dict(body.get("networks") or {}))
    if not names:
        names = {"default": None}  # compose puts a service on the project's default network
    out = []
    for name, opts in names.items():
        if opts and set(opts) - {"aliases"}:
            bad = sorted(set(opts) - {"aliases"})[0]
            raise InputError(f"{where}.networks.{name}.{bad}: the harness cannot honour this network setting")
        top = declared.get(name) or {}
        if name != "default" and name not in declared:
            raise InputError(f"{where}.networks: {name!r} is not declared under the top-level networks")
        for key in top:
            if key not in NETWORK_KEYS:
                raise InputError(f"networks.{name}.{key}: the harness cannot honour this network setting "
                                 "(it creates a plain bridge network per cell)")
        driver = top.get("driver") or "bridge"
        if driver != "bridge":
            raise InputError(f"networks.{name}.driver: {driver}: only bridge networks can be honoured")
        out.append(Network(name, driver, *_ipam(top.get("ipam"), f"networks.{name}.ipam")))
    return tuple(out)


def _ipam(ipam: Any, where: str) -> tuple[str, str]:
    """A fixed subnet and its gateway (`ipam: {config: [{subnet, gateway}]}`): the cell's network
    gets one of its own from the daemon, and the addresses that name this one move with it."""
    import ipaddress

    if not ipam:
        return "", ""
    if (ipam.get("driver") or "default") != "default":
        raise InputError(f"{where}.driver: {ipam['driver']}: only the default IPAM driver can be honoured")
    configs = [c for c in ipam.get("config") or [] if c.get("subnet")]
    if len(configs) > 1:
        raise InputError(f"{where}.config: one subnet per network can be honoured")
    if not configs:
        return "", ""
    try:
        subnet = ipaddress.ip_network(str(configs[0]["subnet"]), strict=False)
        gateway = ipaddress.ip_address(str(configs[0].get("gateway") or next(subnet.hosts())))
    except ValueError as e:
        raise InputError(f"{where}.config: {e}") from None
    return str(subnet), str(gateway)
