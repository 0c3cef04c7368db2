"""The releases of OpenHands on the package registries: which exist, and which one a tag names.

Two products share version numbers (docs/canvas.md, section 1): the app server (PyPI
`openhands-ai`, 0.x and 1.0 ... 1.11) and Agent Canvas (npm `@openhands/agent-canvas`,
1.x), which OpenHands installs today. A tag is `latest` or `latest-N` (Agent Canvas: the
newest, or the release N before it), `canvas-MAJOR.MINOR[.PATCH]` (an Agent Canvas release),
or a bare `MAJOR.MINOR` (that minor's newest patch) / `MAJOR.MINOR.PATCH`: an app-server
release, as before Agent Canvas. A target may also pin its generation (`api`), so
`latest` with `api = "v1"` is the app server's newest. The app server's list is what pip sees
on the index it is configured with (PyPI, or a mirror), final releases with a wheel only:
those are the ones the pypi backend can build (images/wheels.py). A bisect's range is a
slice of that list. What a tag says without asking anyone is tags.py's (pure: the matrix
reader needs it alone), named here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from packaging.version import InvalidVersion, Version

from harness.errors import ImageUnavailable, InputError
from harness.paths import cache_root
from harness.tags import CANVAS_PREFIX as CANVAS_PREFIX
from harness.tags import RELEASE_RE as RELEASE_RE
from harness.tags import TAG_RE as TAG_RE
from harness.tags import TAG_WORDS as TAG_WORDS
from harness.tags import canvas_release as canvas_release
from harness.tags import check_release as check_release
from harness.tags import check_tag as check_tag
from harness.tags import names_release as names_release

PACKAGE = "openhands-ai"
CANVAS_PACKAGE = "@openhands/agent-canvas"
# A run asks from its inputs step, then from every xdist worker, then per bisect step: one
# listing serves them all for this long. Older than that, the index is asked again.
FRESH_SECONDS = 15 * 60
_FROM_VERSIONS = re.compile(r"\(from versions: ([^)]*)\)")


def find_python312(explicit: str | None = None) -> Path:
    """The CPython 3.12 that fetches wheels and, on the offline base, runs inside the images.

    The 0.6x wheels are cp312-only, so the host's own interpreter is not enough; the index
    is also asked through it, so that it lists what a 3.12 can install. One the user names
    (`--python312`, else `OH_MATRIX_PYTHON312`) is that one or bad input: never silently
    another found on the way.
    """
    if explicit:
        return check_python312(explicit, f"--python312 {explicit}")
    if chosen := os.environ.get(PYTHON312_ENV, "").strip():
        return check_python312(chosen, f"{PYTHON312_ENV}={chosen}")
    candidates: list[Path] = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if (pyenv_root / "versions").is_dir():
        candidates += sorted(pyenv_root.glob("versions/3.12.*/bin/python3.12"), reverse=True)
    found = shutil.which("python3.12")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.exists():
            return c.resolve() if c.is_symlink() else c
    raise ImageUnavailable(
        f"no CPython 3.12 found for the pypi backend (set {PYTHON312_ENV} or --python312)"
    )


PYTHON312_ENV = "OH_MATRIX_PYTHON312"
_IS_312 = "import sys; print(sys.implementation.name, *sys.version_info[:2])"


def check_python312(raw: str, named: str) -> Path:
    """The interpreter the user named, if it runs and is a CPython 3.12 (asked by running it:
    a name on PATH, a shim or a venv's python all answer the same way); else one line
    naming the flag or variable it came from."""
    path = Path(raw) if os.sep in raw else Path(shutil.which(raw) or raw)
    if not path.is_file():
        raise InputError(f"{named}: no such file")
    try:
        ran = subprocess.run([str(path), "-c", _IS_312], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise InputError(f"{named}: cannot run it: {getattr(e, 'strerror', None) or e}") from None
    said = ran.stdout.split()
    if said != ["cpython", "3", "12"]:
        why = " ".join(said) or next(iter(ran.stderr.strip().splitlines()), "") or f"exit {ran.returncode}"
        raise InputError(f"{named}: not a CPython 3.12 (it says: {why})")
    return path.resolve() if path.is_symlink() else path


def key(version: str) -> Version:
    return Version(version)


def _final(names: list[str]) -> list[str]:
    out = []
    for n in names:
        try:
            v = Version(n)
        except InvalidVersion:
            continue
        if not (v.is_prerelease or v.is_devrelease):
            out.append(n)
    return sorted(set(out), key=Version)


def ask_index(python: Path, package: str = PACKAGE) -> list[str] | str:
    """The versions of `package` pip can install, from pip itself: asked for a version no
    release has, pip names every candidate it found ("from versions: ..."), which is the
    index's list filtered by wheel tags and Requires-Python; final releases, oldest first.
    A string: why the index could not be read."""
    proc = subprocess.run(
        [str(python), "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
         "-d", str(cache_root() / "release-wheels"), f"{package}<0"],
        capture_output=True, text=True, timeout=120,
    )
    m = _FROM_VERSIONS.search(proc.stderr + proc.stdout)
    if m and m.group(1).strip() not in ("", "none"):
        return _final([v.strip() for v in m.group(1).split(",")])
    tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
    return tail[0][:200]


def _listing_file() -> Path:
    return cache_root() / "index" / f"{PACKAGE}.json"


def _saved(path: Path) -> tuple[float, list[str] | None]:
    """(when, versions) of the last listing kept on disk; (0, None) when there is none."""
    try:
        data = json.loads(path.read_text())
        return float(data["at"]), [str(v) for v in data["versions"]]
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, None


def _save(path: Path, listed: list[str]) -> list[str]:
    """A listing kept on disk with when it was read (atomically: runs read it at once)."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps({"at": time.time(), "versions": listed}))
    tmp.replace(path)
    return listed


def versions(python: Path | None = None, fresh: bool = False) -> list[str]:
    """Every final openhands-ai release with a wheel on the index, oldest first.

    Kept on disk for FRESH_SECONDS (a run's processes share one listing); with no index
    reachable, the last listing this machine read, whatever its age (the build step then
    says so when a wheel is missing), else the releases whose wheels are cached here."""
    path = _listing_file()
    at, listed = _saved(path)
    if not fresh and listed is not None and time.time() - at < FRESH_SECONDS:
        return listed
    asked = ask_index(python or find_python312())
    if isinstance(asked, list):
        return _save(path, asked)
    if listed is not None:
        print(f"[oh-matrix] the index cannot be read ({asked}); using its listing from "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(at))}", file=sys.stderr)
        return listed
    cached = _final([m.group(1) for p in (cache_root() / "release-wheels").glob("openhands_ai-*.whl")
                     if (m := re.match(r"openhands_ai-([^-]+)-", p.name))])
    if cached:
        return cached
    raise ImageUnavailable(f"the index lists no {PACKAGE} release: {asked}")


def matches(tag: str, version: str) -> bool:
    """Whether `version` is one a fixed tag names (`0.62` -> any 0.62.x)."""
    return tag == "latest" or version == tag or version.startswith(tag + ".")


def resolve(tag: str, listed: list[str]) -> str:
    """The exact release a tag names in `listed` (oldest first)."""
    check_tag(tag)
    past = listed and not tag.startswith("latest") and key(tag) > key(listed[-1])
    return _pick(tag, tag, listed, "the index", PACKAGE,
                 f"; Agent Canvas's releases are named {CANVAS_PREFIX}{tag}" if past else "")


def _pick(tag: str, bare: str, listed: list[str], where: str, package: str, hint: str = "") -> str:
    """The release `bare` (a tag without its product's prefix) names in `listed`, oldest first:
    `latest[-N]` by its place from the newest, a number by the releases it names; else one
    line saying what `where` lists."""
    m = TAG_RE.fullmatch(bare)
    assert m is not None
    if bare.startswith("latest"):
        back = int(m.group("back") or 0)
        if back >= len(listed):
            raise InputError(f"tag {tag!r}: {where} lists {len(listed)} releases of {package}, "
                             f"so there is no release {back} before the newest")
        return listed[-1 - back]
    found = [v for v in listed if names_release(bare, v)]
    if not found:
        raise InputError(f"tag {tag!r}: no {package} release on {where} is {bare}"
                         f"{'.x' if bare.count('.') == 1 else ''} (newest: {listed[-1] if listed else 'none'}){hint}")
    return found[-1]


def between(start: str, end: str, listed: list[str]) -> list[str]:
    """The releases from the one `start` names to the one `end` names, both included, oldest
    first: a bisect's range."""
    lo, hi = resolve(start, listed), resolve(end, listed)
    if Version(lo) >= Version(hi):
        raise InputError(f"--from {start} ({lo}) is not older than --to {end} ({hi})")
    return [v for v in listed if Version(lo) <= Version(v) <= Version(hi)]


# -- Agent Canvas (npm) ------------------------------------------------------------------------


def ask_npm(package: str = CANVAS_PACKAGE) -> list[str] | str:
    """The final releases of an npm package on the registry npm is configured with, oldest
    first; a string: why the registry could not be read."""
    if not shutil.which("npm"):
        return "npm is not installed (apt-get install -y npm)"
    try:
        proc = subprocess.run(["npm", "view", package, "versions", "--json"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "npm_config_update_notifier": "false"})
    except subprocess.TimeoutExpired:
        return "npm view did not answer in 120 s"
    if proc.returncode != 0:
        return ([ln for ln in proc.stderr.splitlines() if ln.strip()][:1] or [f"npm exited {proc.returncode}"])[0][:200]
    said = json.loads(proc.stdout or "[]")
    return _final([said] if isinstance(said, str) else [str(v) for v in said])


def canvas_versions(fresh: bool = False) -> list[str]:
    """Every final Agent Canvas release on the npm registry, oldest first; kept on disk like
    the app server's listing, the last one read when the registry does not answer."""
    path = cache_root() / "index" / "agent-canvas.json"
    at, listed = _saved(path)
    if not fresh and listed is not None and time.time() - at < FRESH_SECONDS:
        return listed
    asked = ask_npm()
    if isinstance(asked, list) and asked:
        return _save(path, asked)
    if listed is not None:
        return listed
    raise ImageUnavailable(f"the npm registry lists no {CANVAS_PACKAGE} release: {asked or 'none'}")


def resolve_canvas(tag: str, listed: list[str]) -> str:
    """The exact Agent Canvas release a tag names in `listed` (oldest first)."""
    check_tag(tag)
    return _pick(tag, canvas_release(tag), listed, "the npm registry", CANVAS_PACKAGE)
