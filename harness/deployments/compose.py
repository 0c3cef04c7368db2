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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.deployments.spec import FLAGS, Network, Port, ServiceSpec, Volume
from harness.errors import InputError
from harness.secrets import conceal, secret

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

# Compose's own pattern (compose-go's template package): `$$`, `$NAME`, `${NAME}` and
# `${NAME<op>ARG}`, names in any case; a `${` that is none of these is an invalid template,
# never text. `.*` is greedy and stops at a line's end, as Go's does: the braces are then
# counted (closing_brace) to find where a nested `${...}` ends.
_TEMPLATE = re.compile(r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)"
                       r"|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?].*)?)\}|(?P<invalid>)))")
_BRACED = re.compile(r"(?P<name>[_a-z][_a-z0-9]*)(?P<op>:?[-+?])?(?P<arg>.*)", re.I | re.S)


# What runs the read-only commands of a `docker run` line's `$(...)` for the reader, which runs
# nothing itself (docs/architecture.md, "Pure parts"): argv and environment in, (exit status,
# output, errors) out (deployments/commands.py on this machine).
Runner = Callable[[list[str], dict[str, str]], tuple[int, str, str]]


class ComposeFiles:
    """The texts of a deployment's files, by path: read from disk in the controller, handed
    to the workers as text (a worker never reads the user's files again); and what runs the
    read-only commands of a `docker run` line's `$(...)` (Runner; None: none runs)."""

    def __init__(self, texts: dict[str, str] | None = None,
                 run: Runner | None = None) -> None:
        self.texts = dict(texts or {})
        self.read_here = texts is None
        self.run = run

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
    """Compose's interpolation of one string, as the Compose Specification defines it
    (its Interpolation section) and compose-go does it: `$VAR`, `${VAR}`, `${VAR:-default}`,
    `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+other}`, `${VAR+other}`, nested
    in a default, an error or an other (`${A:-${B:-x}}`), evaluated only when used; `$$` is a
    literal `$`, a `$` before anything else stays as written, and a `${` that is not one of
    these (unterminated, `${}`, `${ A}`) is an input error, as compose refuses the file."""
    return _TEMPLATE.sub(lambda m: _expand(m.group(0), value, env, where), value)


def _expand(matched: str, value: str, env: Mapping[str, str], where: str) -> str:
    """The text for one match of _TEMPLATE: greedy, it may run past its closing brace; what
    follows that brace is interpolated on its own, as compose-go does."""
    close = closing_brace(matched)
    rest = ""
    if close >= 0:
        matched, rest = matched[:close + 1], matched[close + 1:]
    m = _TEMPLATE.match(matched)
    assert m is not None  # a prefix of a match that starts with `$`
    if m.group("escaped"):
        return "$"
    if m.group("named"):
        return env.get(m.group("named"), "")
    if not m.group("braced"):
        raise InputError(f"{where}: {value!r}: not an interpolation compose reads (after `${{` it takes NAME}}, "
                         "NAME:-default} and the like, and refuses the file otherwise; $$ is a literal $)")
    return _braced(m.group("braced"), env, where) + interpolate(rest, env, where)


def closing_brace(text: str) -> int:
    """compose-go's getFirstBraceClosingIndex: where the `${` at the start of `text` closes,
    counting each `{` (and skipping the character after it) against each `}`; -1 if never."""
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _braced(body: str, env: Mapping[str, str], where: str) -> str:
    """`NAME`, or `NAME<op>ARG` with ARG interpolated only when the operator uses it."""
    m = _BRACED.fullmatch(body)
    assert m is not None  # _TEMPLATE's braced group has this shape
    name, op, arg = m.group("name", "op", "arg")
    if op is None:
        return env.get(name, "")
    value = env.get(name)
    unset = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return interpolate(arg, env, where) if unset else str(value)
    if op.endswith("+"):
        return "" if unset else interpolate(arg, env, where)
    if unset:  # `?`: a required variable
        raise InputError(f"{where}: {name}: {interpolate(arg, env, where) or 'required variable is not set'}")
    return str(value)


def _interpolate_all(node: Any, env: Mapping[str, str], path: Path, key: str = "") -> Any:
    """Every string value of a file interpolated (keys are not, as in compose); an error names
    the file and the key it is under (`compose.yml: services.app.image`)."""
    if isinstance(node, str):
        return interpolate(node, env, f"{path}: {key or '(top level)'}")
    if isinstance(node, list):
        return [_interpolate_all(v, env, path, f"{key}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate_all(v, env, path, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
    return node


class _Reset:
    """A value tagged `!reset`: compose's merge takes the key out (the specification's Merge section)."""


class _Override:
    """A value tagged `!override`: compose's merge puts it in place of the earlier files' one."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _yaml(text: str, path: Path) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _merge_tag_constructor()
    try:
        return yaml.load(io.StringIO(text))
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{line}: {getattr(e, 'problem', None) or e}") from None


def _merge_tag_constructor() -> Any:
    """ruamel.yaml's safe constructor knowing compose's own tags, `!reset` and `!override`:
    valid compose, which a plain YAML reader refuses as an unknown tag. A subclass, so that
    the tags stay compose's alone."""
    from ruamel.yaml.constructor import SafeConstructor
    from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode

    def untagged(c: SafeConstructor, node: Node) -> Any:
        """The value under the tag: a mapping or a list as if untagged; a scalar as its text,
        as compose's YAML reader (go-yaml) reads a scalar under a tag it does not know."""
        if isinstance(node, ScalarNode):
            return str(node.value)
        assert isinstance(node, CollectionNode)
        tag = "tag:yaml.org,2002:map" if isinstance(node, MappingNode) else "tag:yaml.org,2002:seq"
        plain = type(node)(tag, node.value, node.start_mark, node.end_mark, node.flow_style)
        return c.construct_object(plain, True)

    class ComposeConstructor(SafeConstructor):
        pass

    ComposeConstructor.add_constructor("!reset", lambda c, node: _Reset())
    ComposeConstructor.add_constructor("!override", lambda c, node: _Override(untagged(c, node)))
    return ComposeConstructor


Where = tuple[str | int, ...]  # a key's place in a file: services, oh, ports


def merge_tags(node: Any, at: Where = ()) -> tuple[Any, list[Where]]:
    """A file's tree as compose merges it (the specification's Merge section): each `!reset` key (or list item)
    taken out, each `!override` value as written; with the places both tags were, where the
    earlier files' values are taken out before this file is merged over them."""
    if isinstance(node, _Override):
        value, inner = merge_tags(node.value, at)
        return value, [at, *inner]
    places: list[Where] = []
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            if isinstance(value, _Reset):
                places.append((*at, key))
                continue
            out[key], inner = merge_tags(value, (*at, key))
            places += inner
        return out, places
    if isinstance(node, list):
        items = []
        for i, value in enumerate(node):
            if not isinstance(value, _Reset):  # a reset item is only taken out of this file's list
                item, inner = merge_tags(value, (*at, i))
                items.append(item)
                places += inner
        return items, places
    return node, places


def without(doc: Any, at: Where) -> Any:
    """`doc` with the value at `at` taken out (compose-go's ResetProcessor.Apply): keys of
    mappings only, a list of `KEY=VALUE` read as the mapping compose makes of it first
    (`environment: [FOO=BAR]` loses FOO to `FOO: !reset`); nothing inside a list."""
    if not at or isinstance(at[0], int):
        return doc
    if isinstance(doc, list):
        doc = _as_mapping(doc, "=")
    if not isinstance(doc, dict) or at[0] not in doc:
        return doc
    key, rest = at[0], at[1:]
    if not rest:
        return {k: v for k, v in doc.items() if k != key}
    return {**doc, key: without(doc[key], rest)}


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


# Lists a later file replaces rather than appends to (the specification's Merge section, "Shell commands").
REPLACED = frozenset({"command", "entrypoint", "test"})


def merge(base: Any, over: Any) -> Any:
    """Compose's merge of a later file over an earlier one (the specification's Merge section, compose-go's
    override.Merge): mappings merged key by key, a null keeping what was set; lists
    appended without repeats, but `command`, `entrypoint` and a healthcheck's `test`
    replaced; `environment`/`extra_hosts` (list or mapping) by name, `volumes` by target,
    a service's `networks` (list or mapping) by name; any other value replaced."""
    if over is None:
        return base
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge_key(k, out[k], v) if k in out else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return [*base, *[x for x in over if x not in base]]
    return over


def _merge_key(key: str, base: Any, over: Any) -> Any:
    if over is None or key in REPLACED:
        return base if over is None else over
    if key in ("environment", "extra_hosts"):
        return {**_as_mapping(base, "="), **_as_mapping(over, "=")}
    if key in ("ports", "env_file") and isinstance(base, list | str):
        return [*as_list(base), *[x for x in as_list(over) if x not in as_list(base)]]
    if key == "volumes" and isinstance(base, list) and isinstance(over, list):
        later = {_volume_target(x) for x in over}
        return [x for x in base if _volume_target(x) not in later] + over
    if key == "networks" and (isinstance(base, list) or isinstance(over, list)):
        return merge(_named(base), _named(over))
    return merge(base, over)


def _named(v: Any) -> Any:
    """A service's `networks` as the mapping compose makes of a list: each name, no options."""
    return {name: None for name in v} if isinstance(v, list) else v


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
        raw, tagged = merge_tags(_yaml(files.read(path, "compose file"), path))
        if not isinstance(raw, dict):
            raise InputError(f"{path}: expected a compose file (a mapping with services)")
        raw = _interpolate_all(raw, env, path)
        if (err := _schema_error(raw, path)) is not None:
            raise InputError(err)
        for at in tagged:  # `!reset` and `!override`: the earlier files' value goes
            doc = without(doc, at)
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
        env_files=tuple(path for path, _ in env_files(body, where, folder, files)),
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
    """The service's settings, each value a secret (secrets.py) that remembers where it was
    written: an env file (by its path as written, for the line people read) or `environment`."""
    out: dict[str, str] = {}
    for path, full in env_files(body, where, folder, files):
        out.update(conceal(read_env_file(files.read(full, "env file"), env, str(full)), path))
    for key, value in _as_mapping(body.get("environment") or {}, "=").items():
        if value is None:  # `- KEY` / `KEY:`: the value of the environment compose runs in, if any
            if key in env:
                out[key] = secret(key, env[key], "environment")
            continue
        out[key] = secret(key, ("true" if value else "false") if isinstance(value, bool) else str(value),
                          "environment")
    return out


def env_files(body: dict[str, Any], where: str, folder: Path, files: ComposeFiles) -> list[tuple[str, Path]]:
    """The service's env files that exist: (the path as written, the file)."""
    found = []
    for i, item in enumerate(as_list(body.get("env_file") or [])):
        path, required = (item, True) if isinstance(item, str) else (item.get("path"), item.get("required", True))
        if item is None or path is None:
            continue
        full = (folder / path) if not Path(path).is_absolute() else Path(path)
        if not files.exists(full):
            if required:
                raise InputError(f"{where}.env_file[{i}]: {full}: no such file")
            continue
        found.append((str(path), full))
    return found


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
