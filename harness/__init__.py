"""oh-matrix: which OpenHands release reaches its sandbox runtime on this Docker host, and why not."""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

_TOP = Path(__file__).resolve().parent.parent  # the checkout, when the package runs from one


@functools.cache
def version() -> str:
    """oh-matrix's version as installed. setuptools-scm made it from git at install time
    (pyproject.toml): `0.2.0` on a release tag, `0.2.1.dev3+g1a2b3c4d5` between tags,
    `0.2.dev245+g57800d444` before the first, the bare fallback `0.2.dev0` from a tree without
    git; `unknown` when the package was never installed."""
    try:
        return importlib.metadata.version("oh-matrix")
    except importlib.metadata.PackageNotFoundError:  # a checkout used without installing it
        return "unknown"


@functools.cache
def commit() -> str | None:
    """The commit of the code that runs: a checkout's HEAD, `-dirty` when tracked files differ
    from it (an editable install keeps the version it was installed with while the checkout
    moves on, so the version alone may name an older commit). Outside a checkout, None: the
    version says it all (its `+g<hash>` between releases)."""
    if not (_TOP / ".git").exists() or not (_TOP / "harness").is_dir():
        return None
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    return head + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def _git(*args: str) -> str | None:
    import subprocess  # here, not above: importing any part of the package starts no process machinery

    try:
        out = subprocess.run(["git", "-C", str(_TOP), *args], capture_output=True, text=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def __getattr__(name: str) -> str:
    if name == "__version__":  # the constant it used to be, now git's (version())
        return version()
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
