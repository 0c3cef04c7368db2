"""Releases built from their true sources: packages a release ran with that no registry has.

`true_sources.toml` (next to this file; see its header) lists the releases whose PyPI
metadata does not match what they really ran with, and the git commit they took those
packages from. For such a release the pypi backend:

1. gets the commit's source archive (`obtain`): from the local cache, else from
   `https://github.com/<owner>/<repo>/archive/<commit>.tar.gz` (10 s timeout), else from
   the folder named by `OH_MATRIX_SOURCES`, which holds `<owner>-<repo>-<commit>.tar.gz`
   files (what an air-gapped machine is given). Every archive is checked before use: it is
   a whole gzip tar, its pax global header `comment` is the commit (git-archive and GitHub
   write the commit id there), its one top folder is `<repo>-<commit>/`, and each listed
   subdirectory has a `pyproject.toml`;
2. builds each subdirectory with `pip wheel --no-deps` into the release's wheelhouse
   (`build_wheels`), and the venv install puts those wheels over the locked set with
   `pip install --no-deps` (pip cannot override the release's exact pins otherwise).

The commit and the archive's sha256 are part of the release's dependency hash, so the
images' cache key changes with them. Images carry the label `oh-matrix.sources`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
from filelock import FileLock

from harness.errors import ImageUnavailable, InputError
from harness.images import failures
from harness.images.failures import BuildFailed
from harness.images.wheels import log
from harness.paths import cache_root

ENV = "OH_MATRIX_SOURCES"
ARCHIVE_URL = "https://github.com/{repo}/archive/{commit}.tar.gz"
URL_TIMEOUT = 10.0
LABEL = "oh-matrix.sources"

_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"\d+(\.\d+)*([a-z]+\d*)?")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")
_WHEEL = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class TrueSource:
    """Packages of one release, as built from one commit."""

    version: str  # the openhands-ai release
    repo: str  # owner/name
    commit: str
    subdirectories: tuple[str, ...]
    why: str

    @property
    def owner(self) -> str:
        return self.repo.split("/")[0]

    @property
    def name(self) -> str:
        return self.repo.split("/")[1]

    @property
    def url(self) -> str:
        return ARCHIVE_URL.format(repo=self.repo, commit=self.commit)

    @property
    def archive_name(self) -> str:
        return f"{self.owner}-{self.name}-{self.commit}.tar.gz"

    @property
    def top(self) -> str:
        """The archive's one top folder, as GitHub names it."""
        return f"{self.name}-{self.commit}"


@dataclass(frozen=True)
class Archive:
    """A checked source archive on disk."""

    source: TrueSource
    path: Path
    sha256: str

    def hash_part(self) -> str:
        """What this archive adds to the release's dependency hash."""
        s = self.source
        return f"{s.repo}@{s.commit}:{self.sha256}:{','.join(s.subdirectories)}"


# -- the table -------------------------------------------------------------------------------

def table_path() -> Path:
    return Path(str(resources.files("harness.images") / "true_sources.toml"))


def load_table(path: Path | None = None) -> dict[str, TrueSource]:
    """The table as {openhands-ai version: TrueSource}; a malformed entry is an InputError
    naming the file and the key."""
    path = path or table_path()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: {e}") from None
    table: dict[str, TrueSource] = {}
    for i, entry in enumerate(data.get("release", [])):
        where = f"{path}: release[{i}]"

        def field(key: str, where: str = where, entry: dict[str, object] = entry) -> object:
            if key not in entry:
                raise InputError(f"{where}: missing {key!r}")
            return entry[key]

        version, repo, commit, why = (field(k) for k in ("version", "repo", "commit", "why"))
        subdirs = field("subdirectories")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise InputError(f"{where}.version: expected a release version like '0.61.0', got {version!r}")
        if not isinstance(repo, str) or not _REPO.fullmatch(repo):
            raise InputError(f"{where}.repo: expected 'owner/name', got {repo!r}")
        if not isinstance(commit, str) or not _SHA.fullmatch(commit):
            raise InputError(f"{where}.commit: expected a full 40-hex commit id, got {commit!r}")
        if (not isinstance(subdirs, list) or not subdirs
                or not all(isinstance(s, str) and s and ".." not in s and not s.startswith("/") for s in subdirs)):
            raise InputError(f"{where}.subdirectories: expected a non-empty list of relative folders")
        if not isinstance(why, str) or not why.strip() or "\n" in why.strip():
            raise InputError(f"{where}.why: expected one line of evidence")
        unknown = set(entry) - {"version", "repo", "commit", "subdirectories", "why"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if version in table:
            raise InputError(f"{where}: release {version} is listed twice")
        table[version] = TrueSource(version, repo, commit, tuple(subdirs), why.strip())
    return table


def for_release(version: str, path: Path | None = None) -> TrueSource | None:
    return load_table(path).get(version)


# -- getting and checking the archive ----------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def problem(path: Path, src: TrueSource) -> str | None:
    """What is wrong with `path` as the archive of `src`, or None when it is that archive."""
    try:
        with gzip.open(path, "rb") as g:  # the whole stream: a truncated tail fails here
            while g.read(1 << 20):
                pass
        with tarfile.open(path, "r:gz") as tar:
            names = tar.getnames()
            comment = tar.pax_headers.get("comment")
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        return f"is not a whole gzip tar archive ({type(e).__name__}: {str(e)[:80]})"
    if comment != src.commit:
        return (f"is commit {comment} by its pax comment, not {src.commit}" if comment
                else "has no pax comment naming its commit (not a git archive)")
    tops = sorted({n.split("/", 1)[0] for n in names})
    if tops != [src.top]:
        shown = ", ".join(t + "/" for t in tops[:3]) or "nothing"
        return f"has top folder {shown}, not {src.top}/"
    if any(n.startswith("/") or ".." in n.split("/") for n in names):
        return "has paths outside its top folder"
    missing = [s for s in src.subdirectories if f"{src.top}/{s}/pyproject.toml" not in names]
    if missing:
        return f"lacks {', '.join(f'{s}/pyproject.toml' for s in missing)}"
    return None


def _download(src: TrueSource, dest: Path) -> str | None:
    """Fetch the archive URL to `dest`; what went wrong, or None."""
    try:
        with httpx.stream("GET", src.url, timeout=URL_TIMEOUT, follow_redirects=True) as r:
            if r.status_code != 200:
                return f"answered HTTP {r.status_code}"
            with dest.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        reason = " ".join(str(e).split())[:100] or type(e).__name__
        return f"not reachable ({reason})"
    bad = problem(dest, src)
    return f"served a file that {bad}" if bad else None


def _held(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not names:
        return "it is empty"
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return "it holds " + ", ".join(names[:5]) + more


def _local(src: TrueSource, dest: Path) -> str | None:
    """Copy the archive from $OH_MATRIX_SOURCES to `dest`; what went wrong, or None."""
    where = os.environ.get(ENV)
    if not where:
        return f"{ENV} is not set"
    folder = Path(where)
    if not folder.is_dir():
        return f"{ENV}={where} is not a folder"
    candidate = folder / src.archive_name
    if not candidate.is_file():
        return f"{ENV}={where} has no {src.archive_name} ({_held(folder)})"
    bad = problem(candidate, src)
    if bad:
        return f"{ENV}={where}: {src.archive_name} {bad}"
    shutil.copyfile(candidate, dest)
    return None


def _attempt_key(src: TrueSource) -> str:
    """The inputs of one attempt to get an archive: the commit, where it was looked for,
    and what the local folder held (so a fixed folder is tried again)."""
    where = os.environ.get(ENV) or ""
    state = "unset"
    if where:
        candidate = Path(where) / src.archive_name
        state = f"{Path(where).resolve()}|{_sha256(candidate) if candidate.is_file() else 'absent'}"
    return hashlib.sha256(f"source|{src.url}|{src.commit}|{state}".encode()).hexdigest()[:10]


def obtain(src: TrueSource) -> Archive:
    """The checked archive of `src`, from the cache, the URL or `OH_MATRIX_SOURCES`.

    Raises ImageUnavailable with one line naming the release, the commit, the URL tried and
    what `OH_MATRIX_SOURCES` held; nothing is left behind but the remembered failure.
    """
    folder = cache_root() / "sources"
    folder.mkdir(exist_ok=True)
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    cached = folder / src.archive_name
    with FileLock(str(locks / f"source-{src.commit}.lock")):
        if cached.is_file():
            if problem(cached, src) is None:
                return Archive(src, cached, _sha256(cached))
            log(f"{cached} is damaged: getting it again")
            cached.unlink()
        name = f"{src.version}-{_attempt_key(src)}"
        failures.check(name, src.version)
        part = folder / f".{src.archive_name}.{os.getpid()}.part"
        try:
            from_url = _download(src, part)
            if from_url is None:
                log(f"{src.repo}@{src.commit[:12]}: source archive from {src.url}")
            else:
                part.unlink(missing_ok=True)
                from_local = _local(src, part)
                if from_local is not None:
                    message = (
                        f"openhands-ai {src.version} runs with {', '.join(src.subdirectories)} of {src.repo} "
                        f"at commit {src.commit}, and its source archive cannot be had: {src.url} {from_url}; "
                        f"{from_local} (fill it on a connected machine: download that URL as "
                        f"{src.archive_name} into a folder, and name the folder in {ENV})"
                    )
                    failures.record(name, message)
                    raise BuildFailed(message, resolved_version=src.version)
                log(f"{src.repo}@{src.commit[:12]}: {src.url} {from_url}; "
                    f"using {ENV}/{src.archive_name}")
            part.replace(cached)
        finally:
            part.unlink(missing_ok=True)
        return Archive(src, cached, _sha256(cached))


# -- building, and saying what was built -----------------------------------------------------

def build_wheels(archive: Archive, python: Path, dest: Path) -> list[Path]:
    """`pip wheel --no-deps` of each subdirectory into `dest`, with `python` (the private
    3.12 builder venv, which has setuptools and wheel: no build isolation, so no index is
    needed)."""
    src = archive.source
    dest.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="oh-matrix-src-") as tmp:
        with tarfile.open(archive.path, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; paths were checked by problem()
                tar.extractall(tmp)
        for sub in src.subdirectories:
            before = set(dest.glob("*.whl"))
            proc = subprocess.run(
                [str(python), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--disable-pip-version-check", "-w", str(dest), str(Path(tmp) / src.top / sub)],
                capture_output=True, text=True,
            )
            new = sorted(set(dest.glob("*.whl")) - before)
            if proc.returncode != 0 or not new:
                tail = _pip_error(proc.stdout + proc.stderr)
                message = f"{src.version}: pip wheel of {src.repo}@{src.commit[:12]}/{sub} failed: {tail[:300]}"
                if failures.transient(proc.stdout + proc.stderr):
                    raise ImageUnavailable(message, resolved_version=src.version)
                raise BuildFailed(message, resolved_version=src.version)
            built += new
    log(f"{src.repo}@{src.commit[:12]}: built {', '.join(p.name for p in built)}")
    return built


_PIP_GENERIC = re.compile(r"error: (subprocess-exited-with-error|metadata-generation-failed|"
                          r"failed-wheel-build|legacy-install-failure)", re.I)


def _pip_error(output: str) -> str:
    """The lines of a failed pip run that say what failed (pip's own boilerplate skipped)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    said = [ln for ln in lines if re.search(r"^error\b|Error\b", ln) and not _PIP_GENERIC.search(ln)]
    return " | ".join((said or lines)[-3:]) or "no output"


def entries(wheels: Sequence[Path], src: TrueSource) -> list[dict[str, str]]:
    """What ImageSet.sources says for wheels built from `src`."""
    out = []
    for w in wheels:
        m = _WHEEL.match(w.name)
        if m:
            out.append({"package": m["name"].replace("_", "-").lower(), "version": m["version"],
                        "repo": src.repo, "commit": src.commit})
    order = [s.lower() for s in src.subdirectories]  # as the table lists them
    return sorted(out, key=lambda e: (order.index(e["package"]) if e["package"] in order else len(order),
                                      e["package"]))


def label_value(items: Sequence[dict[str, str]]) -> str:
    """`owner/repo@commit:pkg==ver,pkg==ver;...` (no spaces or quotes: safe in LABEL lines)."""
    groups: dict[str, list[str]] = {}
    for e in items:
        groups.setdefault(f"{e['repo']}@{e['commit']}", []).append(f"{e['package']}=={e['version']}")
    return ";".join(f"{k}:{','.join(v)}" for k, v in groups.items())


def parse_label(value: str | None) -> list[dict[str, str]]:
    items = []
    for group in (value or "").split(";"):
        where, _, pkgs = group.partition(":")
        repo, _, commit = where.partition("@")
        for p in filter(None, pkgs.split(",")):
            package, _, version = p.partition("==")
            items.append({"package": package, "version": version, "repo": repo, "commit": commit})
    return items


def summary(items: Sequence[dict[str, str]]) -> str:
    """One line per commit: `OpenHands/software-agent-sdk@be9725b (openhands-sdk 1.0.0a5, ...)`."""
    groups: dict[str, list[str]] = {}
    for e in items:
        groups.setdefault(f"{e['repo']}@{e['commit'][:7]}", []).append(f"{e['package']} {e['version']}")
    return "; ".join(f"{k} ({', '.join(v)})" for k, v in groups.items())


def note(items: Sequence[dict[str, str]], src: TrueSource) -> str:
    """The ImageSet note: what was put over the lock, from where, and why."""
    pkgs = ", ".join(f"{e['package']} {e['version']}" for e in items)
    return (f"{pkgs} built from {src.repo}@{src.commit}, installed over the lock's PyPI pins "
            f"(see harness/images/true_sources.toml): {src.why}")
