"""The `OH_MATRIX_*` environment knobs a user sets (a number, an image repository, a folder,
an interpreter), read in one place so that a bad value is one input line (exit 2) in the
inputs step, before anything is built or started, and never a traceback at import."""

from __future__ import annotations

import os
import re

from harness import paths, releases
from harness.errors import InputError

# name -> what it sets (for the error line and docs/exit-codes.md)
WHOLE_NUMBERS = {
    "OH_MATRIX_BOOT_SLOTS": "boots admitted at once",
    "OH_MATRIX_INSTALL_SLOTS": "venv installs at once in a cold build",
}


def whole_number(name: str) -> int | None:
    """The knob's value as a whole number of at least 1, or None when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{name}={raw!r}: expected a whole number of at least 1 ({WHOLE_NUMBERS[name]})")
    return int(raw)


# name -> (the values it takes, the default first; what it chooses)
CHOICES = {
    "OH_MATRIX_INSTALLER": (("uv", "pip"), "what collects a release's wheels and installs its venv in a pypi build "
                                           "(pip: the old way, kept to measure against: nox -s bench -- images)"),
}


def choice(name: str) -> str:
    """The knob's value, one of its choices; the first choice when it is unset or empty."""
    values, what = CHOICES[name]
    raw = os.environ.get(name, "").strip()
    if not raw:
        return values[0]
    if raw not in values:
        raise InputError(f"{name}={raw!r}: expected one of {', '.join(values)} ({what})")
    return raw


# name -> what it names (the official backend's mirror: docs/images.md)
REPOSITORIES = {
    "OH_MATRIX_REGISTRY": "the registry (or mirror) and namespace of the app and runtime images, "
                          "e.g. registry.example:5000/openhands",
    "OH_MATRIX_AGENT_SERVER_REPOSITORY": "the repository of the 1.x agent-server (sandbox) image, "
                                         "e.g. registry.example:5000/openhands/agent-server",
}
# A repository as Docker's reference grammar has it: [host[:port]/]path, lower case, no tag.
_REPOSITORY = re.compile(r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                         r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def repository(name: str) -> str | None:
    """The knob's value as an image repository (no tag, no trailing slash), or None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not _REPOSITORY.fullmatch(raw.removesuffix("/")):
        raise InputError(f"{name}={raw!r}: expected an image repository without a tag ({REPOSITORIES[name]})")
    return raw.removesuffix("/")


APP_ENV = "OH_MATRIX_APP_ENV"  # KEY=VALUE pairs, whitespace-separated
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def app_env() -> dict[str, str]:
    """`OH_MATRIX_APP_ENV`: settings for every app container, below the matrix's, a mode's and
    `--app-env` (a CI job sets it where it cannot pass flags: the harness's own release tests
    give 1.x a startup grace sized for a slow machine with it, tests/harness/conftest.py)."""
    from harness.secrets import secret

    out = {}
    for pair in os.environ.get(APP_ENV, "").split():
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):  # the key, never the value
            raise InputError(f"{APP_ENV}: {key!r}{'=...' if sep else ''}: expected KEY=VALUE pairs separated by spaces")
        out[key] = secret(key, value, APP_ENV)
    return out


SOURCES = "OH_MATRIX_SOURCES"  # the folder of true source archives (images/sources.py)


def sources_folder() -> None:
    """`OH_MATRIX_SOURCES`, when set, is a folder: else every true-sources build would fail
    on it one by one, and each failure would be remembered as the build's."""
    raw = os.environ.get(SOURCES, "").strip()
    if raw and not os.path.isdir(raw):
        raise InputError(f"{SOURCES}={raw!r}: not a folder (it should hold <owner>-<repo>-<commit>.tar.gz "
                         "source archives)")


RUN_ID = "OH_MATRIX_RUN_ID"  # a run's id, set by a parent (a bisect step, a test) for its child
# The id goes into container and network names: Docker's name grammar, and a prefix that
# tells runs apart (cleanup names things by the first 8 characters).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{7,}")


def run_id() -> None:
    raw = os.environ.get(RUN_ID, "")
    if raw and not _RUN_ID.fullmatch(raw):
        raise InputError(f"{RUN_ID}={raw!r}: expected at least 8 letters, digits, '_', '.' or '-' "
                         "(it names the run's containers)")


def python312() -> None:
    """`OH_MATRIX_PYTHON312`, when set, is a CPython 3.12 that runs: checked now, not when a
    pypi build first needs it."""
    if raw := os.environ.get(releases.PYTHON312_ENV, "").strip():
        releases.check_python312(raw, f"{releases.PYTHON312_ENV}={raw}")


def check_all() -> None:
    """Every knob parsed: the inputs step of `run` and `bisect`, and every `images` command
    that asks the daemon, call this before it."""
    paths.check_cache()
    for name in WHOLE_NUMBERS:
        whole_number(name)
    for name in CHOICES:
        choice(name)
    for name in REPOSITORIES:
        repository(name)
    app_env()
    sources_folder()
    run_id()
    python312()
