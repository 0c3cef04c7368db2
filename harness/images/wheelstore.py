"""A release's wheels collected fast, and stored once for every release.

uv resolves the release against its lock for the image's own platform and writes a PEP 751
lock (`pylock.toml`): every package pinned, each file with its URL and sha256. The files
are then fetched in parallel into a store named by their hash, which every release shares,
and the release's wheelhouse is a folder of hard links into it: a second release costs only
the wheels it does not share with the first. A package published only as an sdist is built
once with the private 3.12 builder and stored under the sdist's hash.

pip did the same with `pip wheel` (one package at a time): the old collector stays in
wheels.py, chosen with OH_MATRIX_INSTALLER=pip, so the two can be measured side by side
(`nox -s bench -- images`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import tomllib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from harness.errors import ImageUnavailable
from harness.images import failures
from harness.images.failures import BuildFailed
from harness.paths import cache_root

FETCHES = 16  # downloads at once: the index answers in parallel, one file is latency-bound
_TIMEOUT = httpx.Timeout(60.0, connect=15.0)


def uv_binary() -> Path:
    """The uv that the `uv` package installed beside this Python (a static binary)."""
    from uv import find_uv_bin  # imported here: only a cold build needs it

    return Path(find_uv_bin())


@dataclass(frozen=True)
class Platform:
    """The interpreter and C library the wheels must fit: the base image's, which is this
    host's Debian suite with the builder's CPython copied in (base.py)."""

    python: str  # "3.12.1"
    machine: str  # "x86_64"
    glibc: tuple[int, int]  # (2, 36)

    @classmethod
    def of(cls, python: Path) -> Platform:
        version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        libc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 2.17"  # "glibc 2.36"
        major, minor = (int(x) for x in libc.split()[-1].split(".")[:2])
        return cls(version, platform.machine(), (major, minor))

    @property
    def uv_name(self) -> str:
        return f"{self.machine}-manylinux_{self.glibc[0]}_{self.glibc[1]}"

    def tags(self) -> list[Tag]:
        """Wheel tags this platform takes, best first, as pip orders them."""
        major, minor = (int(x) for x in self.python.split(".")[:2])
        legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
        platforms: list[str] = []
        for glibc_minor in range(self.glibc[1], 4, -1):
            platforms.append(f"manylinux_2_{glibc_minor}_{self.machine}")
            if (2, glibc_minor) in legacy:
                platforms.append(f"{legacy[(2, glibc_minor)]}_{self.machine}")
        platforms.append(f"linux_{self.machine}")
        return [*cpython_tags((major, minor), platforms=platforms),
                *compatible_tags((major, minor), f"cp{major}{minor}", platforms)]


@dataclass(frozen=True)
class File:
    """One file of the lock: what to fetch and the hash it must have."""

    name: str
    url: str
    sha256: str

    @property
    def stored(self) -> Path:
        return store_root() / self.sha256[:2] / self.sha256 / self.name


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    wheel: File | None  # the best wheel for the platform
    sdist: File | None  # only when there is no wheel to take


def store_root() -> Path:
    return cache_root() / "wheel-store"


def resolve(requirement: str, constraints: list[str], plat: Platform, workdir: Path,
            exclude_newer: str | None = None) -> Path:
    """uv's resolution of `requirement` under `constraints` for `plat`, as a pylock.toml.

    `exclude_newer` (an RFC 3339 time) leaves out every file the index received after it:
    the set the requirement would have resolved to then (a release that ships no lock)."""
    (workdir / "constraints.txt").write_text("\n".join(constraints) + "\n")
    (workdir / "requirements.in").write_text(requirement + "\n")
    out = workdir / "pylock.toml"
    proc = subprocess.run(
        [str(uv_binary()), "pip", "compile", "--quiet", "--no-header", "--python-version", plat.python,
         "--python-platform", plat.uv_name, "-c", str(workdir / "constraints.txt"),
         str(workdir / "requirements.in"), "-o", str(out),
         *(["--exclude-newer", exclude_newer] if exclude_newer else [])],
        capture_output=True, text=True, env={**os.environ, "UV_CACHE_DIR": str(cache_root() / "uv")},
    )
    if proc.returncode != 0:
        said = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        message = f"uv pip compile failed: {' | '.join(said[-3:])[:400] or 'no output'}"
        if failures.transient(proc.stderr) or "Failed to fetch" in proc.stderr:
            raise ImageUnavailable(message)  # the index did not answer: may work next time
        raise BuildFailed(message)
    return out


def packages(lock: Path, plat: Platform, skip: Iterable[str] = ()) -> list[Package]:
    """The lock's packages with the file each needs: the best wheel for `plat`, else the
    sdist. Packages named in `skip` (the release's own wheel, already on disk) are left out."""
    order = {tag: i for i, tag in enumerate(plat.tags())}
    skipped = {s.lower() for s in skip}
    out = []
    for entry in tomllib.loads(lock.read_text())["packages"]:
        if entry["name"].lower() in skipped:
            continue
        wheel = _best(entry.get("wheels", []), order)
        sdist = None if wheel else _file(entry.get("sdist"))
        if wheel is None and sdist is None:
            raise BuildFailed(f"{entry['name']} {entry['version']}: the lock names no wheel for "
                              f"{plat.uv_name} and no sdist")
        out.append(Package(entry["name"], entry["version"], wheel, sdist))
    return out


def _file(entry: dict[str, object] | None) -> File | None:
    if not entry:
        return None
    url = str(entry["url"])
    hashes = entry.get("hashes")
    sha = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not sha:
        raise BuildFailed(f"{url}: the lock gives no sha256")
    return File(url.rsplit("/", 1)[-1], url, str(sha))


def _best(wheels: list[dict[str, object]], order: dict[Tag, int]) -> File | None:
    """The wheel pip would take: the one whose best tag comes first for this platform."""
    ranked = []
    for entry in wheels:
        f = _file(entry)
        assert f is not None
        tags = parse_wheel_filename(f.name)[3]
        rank = min((order[t] for t in tags if t in order), default=None)
        if rank is not None:
            ranked.append((rank, f))
    return min(ranked, key=lambda rf: rf[0])[1] if ranked else None


def fetch(files: list[File], transport: httpx.BaseTransport | None = None) -> tuple[int, int]:
    """Every file not yet in the store, fetched in parallel and checked against its hash.
    Returns (files fetched, bytes fetched)."""
    missing = list({f.sha256: f for f in files if not f.stored.is_file()}.values())
    if not missing:
        return 0, 0
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=True, trust_env=True, transport=transport,
                      limits=httpx.Limits(max_connections=FETCHES)) as http, \
            ThreadPoolExecutor(FETCHES, thread_name_prefix="oh-matrix-fetch") as pool:
        sizes = list(pool.map(lambda f: _fetch_one(http, f), missing))
    return len(missing), sum(sizes)


def _fetch_one(http: httpx.Client, f: File) -> int:
    dest = f.stored
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    # A name of this thread's own, renamed when whole: two releases fetching the same file
    # at once each write their own, and the store only ever holds checked files.
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        with http.stream("GET", f.url) as answer, tmp.open("wb") as out:
            answer.raise_for_status()
            for chunk in answer.iter_bytes(1 << 16):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except (httpx.HTTPError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise ImageUnavailable(f"fetching {f.name} failed: {type(e).__name__}: {str(e)[:200]}") from None
    if digest.hexdigest() != f.sha256:
        tmp.unlink(missing_ok=True)
        raise BuildFailed(f"{f.name}: sha256 {digest.hexdigest()[:16]}... is not the lock's {f.sha256[:16]}...")
    os.replace(tmp, dest)
    return size


def built_wheel(sdist: File, builder: Path) -> Path:
    """The wheel of an sdist-only package, built once with the 3.12 builder and stored under
    the sdist's hash, so every release that pins the same sdist takes the same wheel."""
    folder = store_root() / "built" / sdist.sha256
    if found := sorted(folder.glob("*.whl")):
        return found[0]
    with tempfile.TemporaryDirectory(prefix="oh-matrix-sdist-") as tmp:
        proc = subprocess.run([str(builder), "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                               "-w", tmp, str(sdist.stored)], capture_output=True, text=True)
        made = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not made:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])[:300]
            message = f"building a wheel of {sdist.name} failed: {tail}"
            if failures.transient(proc.stderr + proc.stdout):
                raise ImageUnavailable(message)
            raise BuildFailed(message)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / made[0].name
        shutil.move(str(made[0]), dest.with_name(f".{dest.name}.partial"))
        os.replace(dest.with_name(f".{dest.name}.partial"), dest)
    return dest


UV_IN_HOUSE = ".oh-matrix-uv"


def add_uv(house: Path) -> Path:
    """This uv into the wheelhouse, for the offline build container that mounts it: a hard
    link (a copy across file systems), replaced when the installed uv is another."""
    src, dest = uv_binary(), house / UV_IN_HOUSE
    if dest.is_file() and dest.stat().st_size == src.stat().st_size and dest.read_bytes() == src.read_bytes():
        return dest
    tmp = house / f"{UV_IN_HOUSE}.{os.getpid()}.{threading.get_ident()}"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return dest


def link(files: Iterable[Path], house: Path) -> Iterator[Path]:
    """Each stored file into the wheelhouse by a hard link (a copy across file systems)."""
    for src in files:
        dest = house / src.name
        try:
            os.link(src, dest)
        except OSError:
            shutil.copy2(src, dest)
        yield dest


def index_url() -> str:
    """The package index the resolves use: uv's or pip's setting, else PyPI."""
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if value := os.environ.get(name):
            return value.rstrip("/")
    return "https://pypi.org/simple"


def index_files(name: str) -> list[dict[str, Any]]:
    """The files the index lists for a package (the simple API's JSON)."""
    url = f"{index_url()}/{name}/"
    try:
        answer = httpx.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=_TIMEOUT,
                           follow_redirects=True)
        answer.raise_for_status()
        return list(answer.json()["files"])
    except (httpx.HTTPError, ValueError, KeyError) as e:
        raise ImageUnavailable(f"cannot read {name}'s files from {url}: {type(e).__name__}") from None


def index_wheel(name: str, version: str) -> File:
    """A pure-Python release's wheel as the index lists it (its URL and sha256), to fetch into
    the store."""
    for f in index_files(name):
        filename = str(f.get("filename", ""))
        if filename.endswith("-py3-none-any.whl") and str(parse_wheel_filename(filename)[1]) == version \
                and (f.get("hashes") or {}).get("sha256"):
            return File(filename, str(f["url"]), str(f["hashes"]["sha256"]))
    raise ImageUnavailable(f"{name} {version}: the index has no pure-Python wheel of it")
