"""Matrix files: which targets (release tags) meet which modes, with what env and budgets.
Every key is in docs/matrix-files.md, and docs/matrix.schema.json is their JSON Schema (a unit
test holds it to the keys this loader accepts):

    [run]
    backend = "auto"            # auto | official | pypi
    connect_budget = 150        # seconds from conversation creation to a verdict
    app_budget = 150            # seconds for the app's API to answer
    tasks = ["create-file"]     # tasks on each connected cell (default: the five built-in; [] none):
                                # built-in names (harness/tasks/__init__.py), upstream catalog names
                                # (harness/tasks/catalogs/upstream.toml; "upstream" alone: all of it),
                                # "file:PATH" (every task of a task file, PATH relative to this
                                # file; docs/task-files.md). A name twice is an error.
    task_budget = 120           # seconds for the agent to finish one task
    llm = "auto"                # scripted | real | auto (real when LLM_MODEL and LLM_API_KEY are set) |
                                # replay (V0: the built-in tasks from recorded trajectories, no LLM)
    entrypoints = ["api"]       # api (the app server), headless (V0 `python -m openhands.core.main -t`)
                                # and/or cli (the `openhands` CLI paired with the release, --headless)
    upgrade_from = "0.62"       # optional: the release deployed today; the run then shows what moving
                                # to the newest target (latest) does, per mode (also --upgrade-from)
    [env]                       # set on every app container
    LOG_ALL_EVENTS = "true"
    [[targets]]
    tag = "0.62"                # MAJOR.MINOR, MAJOR.MINOR.PATCH, "latest" or "latest-N" (N releases back)
    api = "v0"                  # optional: the API generation (harness/generations.py); by default
                                # the one that covers the tag's major version, for latest the newest
    constraints = "lock.txt"    # optional: pip constraints instead of the release's own lock,
                                # relative to this file
    [modes.host-gateway]        # one table per mode (harness/modes.py), in the order to run them
    env = { KEY = "value" }     # optional, this mode only
    [callers.n8n]               # optional: something that drives OpenHands from outside (an automation
                                # tool, a CI job, a script), one more cell per target and mode
    network = "bridge"          # where it runs: bridge (a container on Docker's default network),
                                # host (the host's own network: a process on the host), app (the app's network)
    url = "http://localhost:{port}"  # the URL it is given for OpenHands; {port}: the app's published
                                # port, {app}: the app container's name, {app_port}: its port inside
    extra_hosts = ["host.docker.internal:host-gateway"]  # optional, as --add-host
    env = { HTTP_PROXY = "..." }  # optional, the caller's own environment
    [callers.ci]                # a caller that runs the SDK's DockerWorkspace (a script, a CI job): it
    drives = "docker-workspace" # starts the agent-server itself (api: calls the app's API, the default);
    network = "bridge"          # one cell per Agent Canvas target, TAG-NETWORK-via-NAME
    host = ""                   # DockerWorkspace's host= ("": the SDK's http://127.0.0.1:{port})
    [[expect]]                  # a cell known not to pass, as pytest's xfail marks a test: a run in
                                # which it comes out so is green (docs/exit-codes.md)
    mode = "bridge"             # which cells: any of cell = "TAG-MODE", target = "TAG", mode = "NAME",
                                # api = "v0", caller = "NAME"
    on = "linux"                # optional: only on this kind of host (linux: a Docker engine on Linux;
                                # desktop: Docker Desktop, OrbStack)
    verdict = "fail"            # fail | error
    cause = "dns-unresolved"    # optional: only this cause (docs/words.md)
    reason = "..."              # why, shown with the cell
    strict = false              # optional: true makes a pass a surprise too

Data only: loading a matrix imports neither docker nor httpx.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import generations, modes
from harness.errors import InputError
from harness.generations import Generation
from harness.secrets import Secret, hinted
from harness.tags import canvas_release, check_tag

if TYPE_CHECKING:
    from harness.deployments import Deployment
    from harness.deployments.compose import Runner
    from harness.model import Expected, Host
    from harness.tasks import Task

BACKENDS = ("auto", "official", "pypi")
LLMS = ("auto", "scripted", "real", "replay")
ENTRYPOINTS = ("api", "headless", "cli")
PLATFORMS = ("linux", "desktop")  # kinds of host an expectation may be limited to (model.Host.platform)
EXPECTED_VERDICTS = ("fail", "error")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Target:
    tag: str
    api: str  # a name in the generations registry
    constraints: str | None = None
    # A deployment's own image as a target of its own (`own-NAME`, docs/deployments.md): the
    # image as the deployment names it, run in that deployment only.
    image: str | None = None
    deployment: str | None = None

    @property
    def generation(self) -> Generation:
        return generations.get(self.api)


@dataclass(frozen=True)
class ModeChoice:
    """A mode as a matrix file chose it: the registry's mode plus this matrix's env for it,
    or one of the user's deployments (`[deployments.NAME]`, harness/deployments)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    deployment: Deployment | None = None

    @property
    def spec(self) -> modes.ModeSpec:
        return self.deployment if self.deployment is not None else modes.get(self.name)


CALLER_NETWORKS = ("bridge", "host", "app")
CALLER_FIELDS = ("port", "app", "app_port")  # what a caller's url may name, as {port}
# What a caller does: call the app's API (api), or run the SDK's DockerWorkspace, which starts
# an agent-server container through the Docker socket and calls it (harness/cells/workspace.py).
CALLER_DRIVES = ("api", "docker-workspace")
WORKSPACE_URL = "http://127.0.0.1:{port}"  # DockerWorkspace's own host when none is given


@dataclass(frozen=True)
class Caller:
    """A `[callers.NAME]` table: something that drives OpenHands from outside, as a person
    set it up (n8n, a CI job, a script): where it runs and the URL it was given. Its cells
    (`TAG-MODE-via-NAME`) call the app's API from there (harness/cells/caller.py)."""

    name: str
    network: str = "bridge"  # CALLER_NETWORKS
    url: str = "http://localhost:{port}"  # a docker-workspace caller's: DockerWorkspace's host=
    extra_hosts: tuple[str, ...] = ()  # NAME:ADDRESS, as --add-host (host-gateway allowed)
    env: dict[str, str] = field(default_factory=dict)
    drives: str = "api"  # CALLER_DRIVES

    @property
    def workspace(self) -> bool:
        return self.drives == "docker-workspace"

    def url_for(self, port: int, app: str, app_port: int) -> str:
        return self.url.format(port=port, app=app, app_port=app_port)


@dataclass(frozen=True)
class Cell:
    target: Target
    mode: ModeChoice
    entrypoint: str = "api"
    caller: Caller | None = None  # a caller cell's caller (entrypoint "caller")
    # A remedy's rerun of cell `origin` in another mode is `<origin>-in-<mode>`, so its
    # containers never share a name or label with the matrix's own cell of that mode.
    origin: str = ""

    def __repr__(self) -> str:
        # what pytest shows of a `cell` parameter (errors, JUnit, --showlocals): its id, never
        # the deployment and its environment behind it
        return f"Cell({self.id!r})"

    @property
    def id(self) -> str:
        if self.origin:
            return f"{self.origin}-in-{self.mode.name}"
        suffix = "" if self.entrypoint == "api" else f"-{self.entrypoint}"
        if self.caller is not None:
            suffix = f"-via-{self.caller.name}"
        if self.target.deployment:  # own-NAME: the deployment on its own image says it all
            return f"{self.target.tag}{suffix}"
        return f"{self.target.tag}-{self.mode.name}{suffix}"


@dataclass(frozen=True)
class Expectation:
    """An `[[expect]]` entry: the cells it names (every selector given must match), on which
    kind of host, and what they are expected to do there."""

    expected: Expected
    cell: str | None = None
    target: str | None = None
    mode: str | None = None
    api: str | None = None  # every cell of a target of this API generation (v0, v1, canvas)
    on: str | None = None  # a PLATFORMS name; None: every host
    caller: str | None = None  # the cells of this caller (`[callers.NAME]`)

    def names(self, cell: Cell, platform: str | None) -> bool:
        return ((self.cell is None or self.cell == cell.id)
                and (self.target is None or self.target == cell.target.tag)
                and (self.mode is None or self.mode == cell.mode.name)
                and (self.api is None or self.api == cell.target.api)
                and (self.caller is None or (cell.caller is not None and self.caller == cell.caller.name))
                and (self.on is None or self.on == platform))


@dataclass(frozen=True)
class Matrix:
    path: str
    backend: str
    connect_budget: float
    app_budget: float
    env: dict[str, str]
    targets: tuple[Target, ...]
    modes: tuple[ModeChoice, ...]
    tasks: tuple[str, ...] = ()  # the tasks' names, in order (test ids TAG-MODE-NAME)
    task_budget: float = 120.0
    llm: str = "auto"
    entrypoints: tuple[str, ...] = ("api",)
    upgrade_from: str | None = None
    # the file as read, so workers get the same matrix without reading it again (not in a repr:
    # a docker run line in it may hold values)
    text: str = field(default="", repr=False)
    task_defs: tuple[Task, ...] = ()  # the tasks themselves (built-in, upstream, task files)
    files: dict[str, str] = field(default_factory=dict, repr=False)  # task and deployment files as read
    expectations: tuple[Expectation, ...] = ()
    callers: tuple[Caller, ...] = ()  # each makes one more cell per target and mode

    def expected(self, cell: Cell, host: Host | None) -> Expected:
        """What the matrix expects of the cell on this host: the first `[[expect]]` entry that
        names it, else a pass."""
        from harness.model import Expected

        platform = host.platform if host is not None else None
        found = next((e for e in self.expectations if e.names(cell, platform)), None)
        return found.expected if found is not None else Expected()

    def catalog(self) -> dict[str, Task]:
        return {t.name: t for t in self.task_defs}

    def mode(self, name: str) -> ModeChoice:
        """The matrix's mode of that name (with its env), or the bare mode when it lists none."""
        chosen = next((m for m in self.modes if m.name == name), None)
        if chosen is not None:
            return chosen
        modes.get(name)  # an unknown mode is an error, never a default
        return ModeChoice(name)

    def cells(self) -> list[Cell]:
        """Every target in every mode, by the run's entry points; a deployment's by its own
        alone (the one its line runs: Deployment.entrypoint), as it runs it. Then each
        docker-workspace caller's, one per target it can start: it runs no app, so its cell's
        mode is the network the caller runs on."""
        apps = [cell for t in self.targets for m in self.modes if t.deployment in (None, m.name)
                for cell in [*(Cell(t, m, e) for e in ((m.deployment.entrypoint,) if m.deployment
                                                       else self.entrypoints)),
                             *(Cell(t, m, "caller", caller=c) for c in self.callers
                               if not c.workspace and not getattr(m.spec, "host_process", False))]]
        return apps + [Cell(t, self.mode(c.network), "workspace", caller=c) for t in self.targets
                       for c in self.callers if c.workspace and not t.deployment and t.generation.docker_workspace]

    def select(self, only: Iterable[str]) -> list[Cell]:
        """Cells whose id is in `only` (all cells when empty); unknown ids are an input error."""
        wanted = list(only)
        cells = self.cells()
        if not wanted:
            return cells
        known = {c.id for c in cells}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InputError(
                f"--only {unknown[0]}: no such cell in {self.path} (cells: {', '.join(sorted(known))})"
            )
        return [c for c in cells if c.id in wanted]


class _Reader:
    """Typed access to a TOML table whose errors name the file and the dotted key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{self.path}: {key}: {msg}")

    def table(self, data: dict[str, Any], key: str, name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table")
        return value

    def number(self, data: dict[str, Any], key: str, name: str, default: float) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(key, f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def choice(self, data: dict[str, Any], key: str, name: str, options: tuple[str, ...],
               default: str | None) -> str:
        value = data.get(name, default)
        if value not in options:
            raise self.fail(key, f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)

    def env(self, data: dict[str, Any], key: str) -> dict[str, str]:
        if not isinstance(data, dict):
            raise self.fail(key, "expected a table of NAME = \"value\"")
        out = {}
        for k, v in data.items():
            if not _ENV_KEY_RE.fullmatch(k):
                raise self.fail(f"{key}.{k}", "not a valid environment variable name")
            if isinstance(v, bool):
                v = "true" if v else "false"
            if not isinstance(v, str | int | float):
                raise self.fail(f"{key}.{k}", f"expected a string, got {type(v).__name__}")
            out[k] = Secret(str(v), k, key) if hinted(k) else str(v)  # written in the matrix: secret by its name
        return out

    def unknown(self, data: dict[str, Any], key: str, allowed: set[str]) -> None:
        extra = sorted(set(data) - allowed)
        if extra:
            where = f"{key}.{extra[0]}" if key else extra[0]
            raise self.fail(where, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def tag_generation(tag: object) -> str:
    """The API generation of a release tag, for the matrix's targets and `images build`:
    `latest[-N]` and `canvas-X.Y` Agent Canvas's, a bare number the app server's by its
    major (tags.py)."""
    return generations.for_tag(check_tag(tag)).name


PACKAGED = Path(__file__).parent / "matrices"  # the matrices shipped with the package
DEFAULT = "default"


def packaged() -> list[str]:
    return sorted(p.stem for p in PACKAGED.glob("*.toml"))


def locate(spec: str | Path) -> Path:
    """`--matrix`: a matrix file's path, or the name of one shipped with the package
    (`default`, `smoke`, ...), so that an installed oh-matrix runs from any folder. A path is
    anything with a slash or a .toml ending; a name that is also a file here means the file."""
    s = str(spec)
    if "/" in s or s.endswith(".toml") or Path(s).is_file():
        p = Path(s)
        if not p.exists() and not p.is_absolute() and (PACKAGED / p.name).is_file() and p.parent.name == "matrices":
            raise InputError(f"{p}: no such matrix file (the shipped matrices moved into the package: "
                             f"--matrix {p.stem}, or `oh-matrix init {p.stem}` for a copy to edit)")
        return p
    if (PACKAGED / f"{s}.toml").is_file():
        return PACKAGED / f"{s}.toml"
    raise InputError(f"--matrix {s}: neither a file nor a shipped matrix ({', '.join(packaged())})")


def load(path: str | Path, run_command: Runner | None = None) -> Matrix:
    p = locate(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise InputError(f"{p}: cannot read matrix file: {e.strerror}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 by its spec
        raise InputError(f"{p}: not UTF-8 text (byte {e.start}): TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p}: invalid TOML: {e}") from None
    return replace(parse(data, str(p), run_command=run_command), text=text)


def parse(data: dict[str, Any], path: str, files: dict[str, str] | None = None,
          run_command: Runner | None = None) -> Matrix:
    """The matrix in `data` (read from `path`); task files are read from disk unless `files`
    holds their texts (a worker gets them from the controller). `run_command` runs the
    read-only commands of a deployment's `$(...)` (deployments/compose.Runner; the reader runs
    none itself, and without it such a `$(...)` is bad input)."""
    r = _Reader(path)
    r.unknown(data, "", {"run", "env", "targets", "modes", "deployments", "expect", "callers"})
    run = r.table(data, "run", "run")
    r.unknown(run, "run", {"backend", "connect_budget", "app_budget", "tasks", "task_budget", "llm", "entrypoints",
                           "upgrade_from"})
    targets_raw = data.get("targets", [])
    if not isinstance(targets_raw, list) or not (targets_raw or data.get("deployments")):
        raise r.fail("targets", "expected at least one [[targets]] table (or deployments that bring their own image)")
    targets: list[Target] = []
    for i, t in enumerate(targets_raw):
        key = f"targets[{i}]"
        if not isinstance(t, dict):
            raise r.fail(key, "expected a table")
        r.unknown(t, key, {"tag", "api", "constraints"})
        try:
            default = tag_generation(t.get("tag"))
        except InputError as e:
            raise r.fail(f"{key}.tag", str(e)) from None
        tag = str(t["tag"])  # a checked tag string from here on
        if any(x.tag == tag for x in targets):
            raise r.fail(f"{key}.tag", f"duplicate tag {tag!r}")
        api = r.choice(t, f"{key}.api", "api", tuple(generations.GENERATIONS), default)
        gen = generations.get(api)
        if why := gen.no_cells:  # refused here, not as a cell's error after a build
            raise r.fail(f"{key}.api", f"{api!r}: not a target yet: {why}")
        spelled = generations.version_tuple(canvas_release(tag) if gen.tag_prefix else tag)
        if not gen.majors and spelled is not None and spelled < gen.oldest[:len(spelled)]:
            raise r.fail(f"{key}.tag", f"{tag!r}: older than {'.'.join(map(str, gen.oldest))}, the oldest "
                                       f"release the {gen.name} adapter knows: {gen.oldest_why}")
        constraints = t.get("constraints")
        if constraints is not None:
            if not isinstance(constraints, str):
                raise r.fail(f"{key}.constraints", "expected a path")
            found = Path(path).parent / constraints  # relative to the matrix file
            if not found.is_file():
                raise r.fail(f"{key}.constraints", f"no such file: {found}")
            constraints = str(found)
        targets.append(Target(tag, api, constraints))
    modes_raw = data.get("modes", {})
    deployments_raw = data.get("deployments", {})
    if not isinstance(modes_raw, dict) or not isinstance(deployments_raw, dict) or not (modes_raw or deployments_raw):
        raise r.fail("modes", f"expected at least one [modes.NAME] ({', '.join(modes.MODES)}) "
                              "or [deployments.NAME] table")
    chosen = []
    for name, body in modes_raw.items():
        key = f"modes.{name}"
        if name not in modes.MODES:
            raise r.fail(key, f"unknown mode (known: {', '.join(modes.MODES)})")
        if not isinstance(body, dict):
            raise r.fail(key, "expected a table")
        r.unknown(body, key, {"env"})
        chosen.append(ModeChoice(name, r.env(body.get("env", {}), f"{key}.env")))
    deployment_files: dict[str, str] = {}
    for name, body in deployments_raw.items():
        choice, own = _deployment(r, name, body, path, files, deployment_files, run_command)
        chosen.append(choice)
        targets += [own] if own else []
    if not targets:
        raise r.fail("targets", "expected at least one [[targets]] table: the deployments here run no image of "
                                "their own (own_image = false, or none named)")
    task_defs, texts = _tasks(r, run, files)
    texts = {**texts, **deployment_files}
    m = Matrix(
        path=path,
        backend=r.choice(run, "run.backend", "backend", BACKENDS, "auto"),
        connect_budget=r.number(run, "run.connect_budget", "connect_budget", 150),
        app_budget=r.number(run, "run.app_budget", "app_budget", 150),
        env=r.env(data.get("env", {}), "env"),
        targets=tuple(targets),
        modes=tuple(chosen),
        tasks=tuple(t.name for t in task_defs),
        task_defs=tuple(task_defs),
        files=texts,
        task_budget=r.number(run, "run.task_budget", "task_budget", 120),
        llm=r.choice(run, "run.llm", "llm", LLMS, "auto"),
        entrypoints=_entrypoints(r, run),
        upgrade_from=_upgrade_from(r, run, targets),
        callers=_callers(r, data.get("callers", {})),
    )
    return replace(m, expectations=_expectations(r, data.get("expect", []), m))


_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


OWN_KEYS = ("env", "own_image", "api")  # a deployment's keys the matrix reads itself


def _deployment(r: _Reader, name: str, body: Any, path: str, files: dict[str, str] | None,
                read: dict[str, str], run_command: Runner | None) -> tuple[ModeChoice, Target | None]:
    """A `[deployments.NAME]` table: the user's deployment as a mode named NAME, and the
    target `own-NAME` of the image it names (unless `own_image = false`)."""
    from harness import deployments

    key = f"deployments.{name}"
    if not isinstance(body, dict):
        raise r.fail(key, "expected a table")
    if name in modes.MODES:
        raise r.fail(key, f"{name} is a built-in mode: give your deployment another name")
    if not _NAME_RE.fullmatch(name):
        raise r.fail(key, "a deployment's name is lower case letters, digits, - and _ (it names its cells)")
    dep = deployments.load(name, {k: v for k, v in body.items() if k not in OWN_KEYS}, path, files, run_command)
    read.update(dep.files)
    choice = ModeChoice(name, r.env(body.get("env", {}), f"{key}.env"), dep)
    wanted = body.get("own_image", True)
    if not isinstance(wanted, bool):
        raise r.fail(f"{key}.own_image", "expected true or false")
    if not wanted or not dep.service.image:
        if "api" in body:
            raise r.fail(f"{key}.api", "names the generation of the deployment's own image, which is not run")
        return choice, None
    return choice, Target(f"own-{name}", _own_api(r, key, body, dep.service.image), image=dep.service.image,
                          deployment=name)


def _own_api(r: _Reader, key: str, body: dict[str, Any], image: str) -> str:
    """The API generation of a deployment's own image: `api` when given, else Agent
    Canvas's for its image (ghcr.io/openhands/agent-canvas, any tag), else its tag's
    (`:0.62`, `:1.11.0`; `:latest`, `:main` or none: the app server's newest, since the app
    server's own image is what says `latest` there); the image's own version is checked
    against it once it is on the daemon (images.prepare_own)."""
    if (named := generations.for_image(image)) is not None:
        return r.choice(body, f"{key}.api", "api", tuple(generations.GENERATIONS), named.name)
    name = image.split("@", 1)[0]  # a digest pins the image, not the release
    last = name.rpartition("/")[2]
    tag = last.partition(":")[2] or "latest"  # a registry's host:port is before the last slash
    version = re.match(r"v?(\d+\.\d+(\.\d+)?)", tag)
    if "api" not in body and not version and tag not in ("latest", "main"):
        raise r.fail(f"{key}.api", f"the deployment's image {image} has a tag that names no release: say which "
                                   f"API generation it is ({', '.join(generations.GENERATIONS)}), or own_image = false")
    try:
        default = tag_generation(version.group(1)) if version else generations.app_server_newest().name
    except InputError as e:
        raise r.fail(f"{key}.api", f"{image}: {e}") from None
    return r.choice(body, f"{key}.api", "api", tuple(generations.GENERATIONS), default)


def _callers(r: _Reader, raw: Any) -> tuple[Caller, ...]:
    if not isinstance(raw, dict):
        raise r.fail("callers", "expected [callers.NAME] tables")
    return tuple(_caller(r, name, body) for name, body in raw.items())


def _caller(r: _Reader, name: str, body: Any) -> Caller:
    key = f"callers.{name}"
    if not isinstance(body, dict):
        raise r.fail(key, "expected a table")
    if not _NAME_RE.fullmatch(name):
        raise r.fail(key, "a caller's name is lower case letters, digits, - and _ (it names its cells)")
    drives = r.choice(body, f"{key}.drives", "drives", CALLER_DRIVES, "api")
    if drives == "docker-workspace":
        return _workspace_caller(r, name, body, key)
    r.unknown(body, key, {"network", "url", "extra_hosts", "env", "drives"})
    url = body.get("url", Caller.url)
    if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
        raise r.fail(f"{key}.url", f"expected an http:// URL, got {url!r}")
    fields = ", ".join("{" + f + "}" for f in CALLER_FIELDS)
    try:
        named = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
    except ValueError as e:
        raise r.fail(f"{key}.url", f"{url!r}: {e} (it may name {fields})") from None
    if unknown := sorted(named - set(CALLER_FIELDS)):
        raise r.fail(f"{key}.url", f"{{{unknown[0]}}}: not something a caller's url can name ({fields})")
    return Caller(name, r.choice(body, f"{key}.network", "network", CALLER_NETWORKS, "bridge"), url,
                  _extra_hosts(r, body, key), r.env(body.get("env", {}), f"{key}.env"))


def _workspace_caller(r: _Reader, name: str, body: dict[str, Any], key: str) -> Caller:
    """A caller that runs DockerWorkspace: no app to name, so `host` (its host= argument) may
    name the port it publishes the agent-server on ({port}) and nothing else."""
    r.unknown(body, key, {"network", "host", "extra_hosts", "env", "drives"})
    host = body.get("host", "")
    if not isinstance(host, str) or (host and not re.match(r"https?://[^/\s]+", host)):
        raise r.fail(f"{key}.host", f"expected \"\" or an http:// URL, got {host!r}")
    try:
        named = {f for _, f, _, _ in string.Formatter().parse(host) if f is not None}
    except ValueError as e:
        raise r.fail(f"{key}.host", f"{host!r}: {e} (it may name {{port}})") from None
    if unknown := sorted(named - {"port"}):
        raise r.fail(f"{key}.host", f"{{{unknown[0]}}}: a DockerWorkspace's host may name {{port}} only")
    network = r.choice(body, f"{key}.network", "network", ("bridge", "host"), "bridge")
    return Caller(name, network, host or WORKSPACE_URL, _extra_hosts(r, body, key),
                  r.env(body.get("env", {}), f"{key}.env"), drives="docker-workspace")


def _extra_hosts(r: _Reader, body: dict[str, Any], key: str) -> tuple[str, ...]:
    hosts = body.get("extra_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and re.fullmatch(r"[^:\s]+:\S+", h) for h in hosts):
        raise r.fail(f"{key}.extra_hosts", f"expected a list of \"NAME:ADDRESS\", got {hosts!r}")
    return tuple(hosts)


EXPECT_KEYS = {"cell", "target", "mode", "api", "caller", "on", "verdict", "cause", "reason", "strict"}


def _expectations(r: _Reader, raw: Any, m: Matrix) -> tuple[Expectation, ...]:
    if not isinstance(raw, list):
        raise r.fail("expect", "expected [[expect]] tables")
    return tuple(_expectation(r, f"expect[{i}]", e, m) for i, e in enumerate(raw))


def _expectation(r: _Reader, key: str, e: Any, m: Matrix) -> Expectation:
    """One `[[expect]]` entry, each name it gives checked against the matrix: an entry that
    names nothing would hide nothing, silently."""
    from harness.model import Cause, Expected

    if not isinstance(e, dict):
        raise r.fail(key, "expected a table")
    r.unknown(e, key, EXPECT_KEYS)
    known = {"cell": [c.id for c in m.cells()], "target": [t.tag for t in m.targets], "mode": [c.name for c in m.modes],
             "api": list(dict.fromkeys(t.api for t in m.targets)), "caller": [c.name for c in m.callers]}
    if not any(k in e for k in known):
        raise r.fail(key, "name the cells it is about: cell, target, mode, api and/or caller")
    for k, names in known.items():
        if k in e and e[k] not in names:
            raise r.fail(f"{key}.{k}", f"{e[k]!r} is not a {k} of this matrix ({', '.join(names)})")
    on = r.choice(e, f"{key}.on", "on", PLATFORMS, None) if "on" in e else None
    verdict = r.choice(e, f"{key}.verdict", "verdict", EXPECTED_VERDICTS, None)
    cause = r.choice(e, f"{key}.cause", "cause", tuple(Cause), None) if "cause" in e else None
    reason, strict = e.get("reason"), e.get("strict", False)
    if not isinstance(reason, str) or not reason.strip():
        raise r.fail(f"{key}.reason", "say why the cells are expected to do so (a sentence)")
    if not isinstance(strict, bool):
        raise r.fail(f"{key}.strict", "expected true or false")
    expected = Expected.model_validate({"verdict": verdict, "cause": cause, "reason": reason.strip(), "strict": strict})
    return Expectation(expected,
                       cell=e.get("cell"), target=e.get("target"), mode=e.get("mode"), api=e.get("api"), on=on,
                       caller=e.get("caller"))


def _upgrade_from(r: _Reader, run: dict[str, Any], targets: list[Target]) -> str | None:
    tag = run.get("upgrade_from")
    if tag is None:
        return None
    if tag not in [t.tag for t in targets]:
        known = ", ".join(t.tag for t in targets)
        raise r.fail("run.upgrade_from", f"{tag!r} is not a target of this matrix ({known})")
    return str(tag)


def upgrade_target(m: Matrix, before: str) -> str:
    """What an upgrade from `before` moves to: latest when the matrix has it, else its newest tag."""
    tags = [t.tag for t in m.targets if t.tag != before and not t.deployment]  # to a release, not an image
    if not tags:
        raise InputError(f"--upgrade-from {before}: {m.path} has no other release to move to")
    if "latest" in tags:
        return "latest"
    return max(tags, key=lambda t: tuple(int(x) for x in re.findall(r"\d+", t)))


def _entrypoints(r: _Reader, run: dict[str, Any]) -> tuple[str, ...]:
    names = run.get("entrypoints", ["api"])
    if not isinstance(names, list) or not names or not all(n in ENTRYPOINTS for n in names):
        raise r.fail("run.entrypoints", f"expected a non-empty list of {', '.join(ENTRYPOINTS)}, got {names!r}")
    if len(set(names)) != len(names):
        raise r.fail("run.entrypoints", f"duplicate entry point in {names!r}")
    return tuple(names)


def _tasks(r: _Reader, run: dict[str, Any], files: dict[str, str] | None) -> tuple[list[Task], dict[str, str]]:
    from harness.tasks import CATALOG, resolve

    names = run.get("tasks", list(CATALOG))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise r.fail("run.tasks", f"expected a list of task names or file:PATH ({', '.join(CATALOG)})")
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise r.fail(f"run.tasks[{i}]", f"duplicate task {n!r}")
    try:
        return resolve(names, Path(r.path).parent, files)
    except InputError as e:  # a task file's own error names that file; a matrix entry's, this one
        msg = str(e)
        raise (InputError(f"{r.path}: {msg}") if msg.startswith("run.tasks") else e) from None


def parse_app_env(pairs: Iterable[str]) -> dict[str, str]:
    """`--app-env KEY=VAL` flags into a dict of secrets (secrets.py); a malformed one is an
    input error that names the key, never the value."""
    from harness.secrets import secret

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_KEY_RE.fullmatch(key):
            raise InputError(f"--app-env {key!r}{'=...' if sep else ''}: expected KEY=VALUE")
        out[key] = secret(key, value, "--app-env")
    return out
