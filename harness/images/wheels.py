"""A release's Python side, fetched on the host: the `openhands-ai` wheel, its lock as pip
constraints, and a wheelhouse that the image build installs from with no network."""

from __future__ import annotations

import contextvars
import hashlib
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness import knobs, releases
from harness.errors import ImageUnavailable, InputError
from harness.images import wheelstore
from harness.images.failures import BuildFailed, transient
from harness.paths import cache_root

PACKAGE = releases.PACKAGE
find_python312 = releases.find_python312  # where the builds' callers have always found it
_WHEEL_RE = re.compile(r"openhands_ai-(?P<version>[0-9][^-]*)-.*\.whl$")


# The release a line of progress is about, when several build at once (images.prepare sets it).
current_tag: contextvars.ContextVar[str] = contextvars.ContextVar("current_tag", default="")


def log(msg: str) -> None:
    tag = current_tag.get()
    print(f"[oh-matrix images{' ' + tag if tag else ''}] {msg}", file=sys.stderr, flush=True)


def spec_for_tag(tag: str, python: Path) -> tuple[str, str | None]:
    """The pip requirement a tag means, and the exact version when the index had to be read
    to know it: `0.62` -> newest 0.62.x, `0.62.0` -> exactly that, `latest` -> newest
    release, `latest-N` -> the release N before the newest on the index (releases.py)."""
    releases.check_tag(tag)
    if tag == "latest":
        return PACKAGE, None
    if tag.startswith("latest-"):
        exact = releases.resolve(tag, releases.versions(python))
        return f"{PACKAGE}=={exact}", exact
    if tag.count(".") == 1:
        return f"{PACKAGE}=={tag}.*", None
    return f"{PACKAGE}=={tag}", None


@dataclass(frozen=True)
class Release:
    tag: str
    version: str
    wheel: Path


def resolve_release(tag: str, python: Path) -> Release:
    """Which `openhands-ai` release a tag means today, with its wheel on disk.

    Asks PyPI through pip; with no index reachable, falls back to the newest wheel
    already cached for that tag (and says so).
    """
    spec, exact = spec_for_tag(tag, python)
    dest = cache_root() / "release-wheels"
    dest.mkdir(exist_ok=True)
    proc = subprocess.run(
        [str(python), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-d", str(dest), spec],
        capture_output=True, text=True,
    )
    found = re.findall(r"(?:Saved|File was already downloaded) (\S+\.whl)", proc.stdout)
    if proc.returncode == 0 and found:
        wheel = Path(found[-1])
        m = _WHEEL_RE.search(wheel.name)
        if m:
            return Release(tag, m["version"], wheel)
    cached = [
        (m["version"], p) for p in dest.glob("openhands_ai-*.whl")
        if (m := _WHEEL_RE.search(p.name)) and releases.matches(exact or tag, m["version"])
    ]
    if cached:
        version, wheel = max(cached, key=lambda vp: releases.key(vp[0]))
        log(f"{tag}: PyPI not reachable, using cached wheel {wheel.name}")
        return Release(tag, version, wheel)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    raise ImageUnavailable(f"{tag}: cannot resolve {spec} on PyPI: {tail[0][:200]}")


def lock_constraints(wheel: Path) -> list[str]:
    """The release's own lock (every openhands-ai wheel ships `openhands/poetry.lock`)
    as pip constraints. Entries taken from git or a local path cannot be pinned by
    version and nothing at run time needs them, so they are left out."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = tomllib.loads(zf.read("openhands/poetry.lock").decode())
        except KeyError:
            raise ImageUnavailable(f"{wheel.name} ships no openhands/poetry.lock") from None
    pins = []
    for pkg in data.get("package", []):
        source = pkg.get("source") or {}
        if source.get("type") in {"git", "directory", "file", "url"}:
            continue
        pins.append(f"{pkg['name']}=={pkg['version']}")
    return sorted(pins, key=str.lower)


def read_constraints(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"--constraints {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:  # pip would refuse it too, after the daemon and a download
        raise InputError(f"--constraints {path}: not UTF-8 text (byte {e.start})") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def deps_hash(release: Release, constraints: list[str], extra: Sequence[str] = ()) -> str:
    """Identity of a release's dependency set: the wheel itself plus its constraints, plus
    `extra` (the true sources' commit and archive hash: sources.Archive.hash_part). With no
    extra the hash is what it always was, so other releases' caches stay valid."""
    h = hashlib.sha256()
    for part in (release.version, hashlib.sha256(release.wheel.read_bytes()).hexdigest(),
                 "\n".join(constraints), *extra):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def builder_python(python: Path) -> Path:
    """A private 3.12 venv with `wheel`, so sdists in the lock build without touching the
    host's interpreter. Made once, under a lock (releases build in parallel)."""
    venv = cache_root() / "py312-builder"
    py = venv / "bin" / "python"
    ready = venv / ".ready"
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / "py312-builder.lock")):
        if not ready.exists():
            if not py.exists():
                subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "wheel", "setuptools"], check=True)
            ready.write_text("wheel setuptools\n")
    return py


def wheelhouse(release: Release, constraints: list[str], python: Path, key: str,
               extra: Callable[[Path, Path], None] | None = None) -> Path:
    """All wheels the release needs, resolved against its constraints, cached by `key`.

    `extra(folder, builder_python)` adds wheels of its own (the true sources, into
    `folder/sources/`). Built in `<house>.partial` and renamed when whole: a failure leaves
    no partial wheelhouse behind."""
    installer = knobs.choice("OH_MATRIX_INSTALLER")
    # pip's houses keep the name they always had; uv's are apart, so a comparison of the two
    # never takes one's wheels for the other's
    house = cache_root() / "wheelhouse" / f"{release.version}-{key}{'' if installer == 'pip' else '-' + installer}"
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / f"wheelhouse-{house.name}.lock")):
        if (house / ".complete").exists():
            return house
        tmp = house.with_name(house.name + ".partial")
        try:
            fill = _fill_pip if installer == "pip" else _fill_uv
            fill(tmp, release, constraints, python, extra)
            shutil.rmtree(house, ignore_errors=True)
            tmp.rename(house)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return house


def _package(release: Release) -> str:
    return release.wheel.name.split("-")[0].replace("_", "-")  # openhands-ai, or the CLI's openhands


def _fill_uv(tmp: Path, release: Release, constraints: list[str], python: Path,
             extra: Callable[[Path, Path], None] | None) -> None:
    """uv resolves, the store fetches in parallel, the house links (wheelstore.py)."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plat = wheelstore.Platform.of(python)
    package = _package(release)
    t0 = time.monotonic()
    lock = wheelstore.resolve(f"{package} @ {release.wheel.resolve().as_uri()}", constraints, plat, tmp)
    (tmp / "requirements.in").unlink()
    pkgs = wheelstore.packages(lock, plat, skip=[package])
    resolved = time.monotonic() - t0
    count, size = wheelstore.fetch([f for p in pkgs if (f := p.wheel or p.sdist)])
    builder = builder_python(python) if extra is not None or any(p.wheel is None for p in pkgs) else None
    stored = [p.wheel.stored if p.wheel else wheelstore.built_wheel(p.sdist, builder)  # type: ignore[arg-type]
              for p in pkgs]
    list(wheelstore.link(stored, tmp))
    shutil.copy2(release.wheel, tmp / release.wheel.name)
    log(f"{package} {release.version}: {len(pkgs)} packages resolved by uv for {plat.uv_name} in {resolved:.0f} s, "
        f"{count} fetched ({size / 1e6:.0f} MB), {len(pkgs) - count} already in the store, "
        f"in {time.monotonic() - t0:.0f} s")
    if extra is not None:
        assert builder is not None
        extra(tmp, builder)
    (tmp / ".complete").write_text(f"{len(pkgs) + 1} wheels\n")


def _fill_pip(tmp: Path, release: Release, constraints: list[str], python: Path,
              extra: Callable[[Path, Path], None] | None) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "constraints.txt").write_text("\n".join(constraints) + "\n")
    shutil.copy2(release.wheel, tmp / release.wheel.name)
    py = builder_python(python)
    pinned = "pinned by its lock" if constraints else "resolved by pip: its wheel ships no lock"
    package = _package(release)
    log(f"{package} {release.version}: fetching and building wheels ({pinned}; ~2 min cold)")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(py), "-m", "pip", "wheel", "--disable-pip-version-check", "-w", str(tmp),
         "-c", str(tmp / "constraints.txt"), str(tmp / release.wheel.name)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    count = 0
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-15:]
        if line.startswith(("Collecting", "  Building wheel")):
            count += 1
            if count % 50 == 0:
                log(f"{release.version}: {count} packages collected ({time.monotonic() - t0:.0f} s)")
    if proc.wait() != 0:
        message = f"{release.version}: pip wheel failed: " + " | ".join(tail[-3:])
        if transient("\n".join(tail)):  # the index did not answer: may work next time
            raise ImageUnavailable(message, resolved_version=release.version)
        raise BuildFailed(message, resolved_version=release.version)
    if extra is not None:
        extra(tmp, py)
    n = len(list(tmp.glob("**/*.whl")))
    size = sum(p.stat().st_size for p in tmp.glob("**/*.whl")) / 1e6
    log(f"{release.version}: {n} wheels, {size:.0f} MB in {time.monotonic() - t0:.0f} s")
    (tmp / ".complete").write_text(f"{n} wheels\n")
