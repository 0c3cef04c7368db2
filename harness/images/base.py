"""The Python 3.12 base image that every pypi-built OpenHands image starts from.

With no registry (this project's own machines), the base is a Debian rootfs made by
`debootstrap` from the host's own apt mirror plus the host's CPython 3.12 tree, imported
with `docker import`. The interpreter keeps its install prefix inside the image because
its RUNPATH points there. Its shared-library needs are read with `ldd` and mapped to
Debian packages with `dpkg -S`, so the rootfs carries exactly what it links against.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound
from filelock import FileLock

from harness.errors import ImageUnavailable
from harness.images.wheels import log
from harness.paths import cache_root

RECIPE = "base-2"
REPO = "oh-matrix/base"
# What the OpenHands runtime uses from the OS (bash sessions in tmux, git for the
# workspace, sudo for the user switch) and what the harness's probes use.
RUNTIME_PACKAGES = [
    "ca-certificates", "curl", "git", "tmux", "sudo", "iproute2", "procps", "netcat-openbsd",
    "dnsutils", "less", "jq", "ripgrep", "patch",
]


@dataclass(frozen=True)
class BaseImage:
    ref: str
    python: str  # interpreter path inside the image


def _host_suite_and_mirror() -> tuple[str, str]:
    """The host's Debian release and mirror: the CPython we copy was built against the
    host's libraries, so the image must be the same release."""
    suite = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            suite = line.split("=", 1)[1].strip('"')
    mirror = ""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for src in sources:
        m = re.search(r"^URIs:\s*(\S+)", src.read_text(), re.M)
        if m and "security" not in m.group(1):
            mirror = m.group(1)
            break
    legacy = Path("/etc/apt/sources.list")
    if not mirror and legacy.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+\s+main", legacy.read_text(), re.M)
        mirror = m.group(1) if m else ""
    if not suite or not mirror:
        raise ImageUnavailable("cannot find this host's Debian suite and apt mirror for debootstrap")
    return suite, mirror


def _linked_packages(prefix: Path) -> list[str]:
    """Debian packages providing the libraries that the interpreter and its extension
    modules link against (libssl, libffi, libsqlite3, ...)."""
    # _tkinter is skipped: a GUI toolkit (and its X11 libraries) has no use in a server image.
    dynload = [p for p in prefix.glob("lib/python3.12/lib-dynload/*.so") if "_tkinter" not in p.name]
    objects = [prefix / "bin" / "python3.12", *dynload]
    libs: set[str] = set()
    for obj in objects:
        out = subprocess.run(["ldd", str(obj)], capture_output=True, text=True).stdout
        for m in re.finditer(r"=>\s+(/\S+)", out):
            if not m.group(1).startswith(str(prefix)):
                libs.add(m.group(1))
    packages: set[str] = set()
    for lib in sorted(libs):
        real = os.path.realpath(lib)
        for candidate in (lib, real, real.replace("/usr/lib/", "/lib/", 1),
                          lib.replace("/lib/", "/usr/lib/", 1)):
            proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if proc.returncode == 0:
                packages.add(proc.stdout.split(":", 1)[0])
                break
    return sorted(packages)


def _copy_python(prefix: Path, rootfs: Path) -> None:
    dest = rootfs / prefix.relative_to("/")
    # Tests, static libraries and the host's installed packages are dead weight in the image;
    # venvs get pip from ensurepip's bundled wheel.
    ignore = shutil.ignore_patterns("test", "tests", "idle_test", "*.a", "__pycache__")
    shutil.copytree(prefix, dest, symlinks=True, ignore=ignore)
    site = dest / "lib" / "python3.12" / "site-packages"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    # The prefix may sit under /root; users other than root (the V1 sandbox runs as uid
    # 10001) must be able to reach the interpreter.
    for parent in dest.parents:
        if parent == rootfs:
            break
        parent.chmod(0o755)


# Working out the base's name reads every extension module's libraries (ldd, dpkg -S: ~5 s);
# releases that build at once (prepare_all) ask for it once per process, not once each.
_known: dict[Path, BaseImage] = {}


def ensure_base(client: docker.DockerClient, python: Path) -> BaseImage:
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / "base.lock")):  # one debootstrap at a time on this machine
        known = _known.get(python)
        if known is not None:
            try:
                client.images.get(known.ref)
                return known
            except ImageNotFound:  # removed meanwhile (images prune --all): make it again
                pass
        _known[python] = image = _ensure_base(client, python)
        return image


def _ensure_base(client: docker.DockerClient, python: Path) -> BaseImage:
    prefix = python.parent.parent
    suite, mirror = _host_suite_and_mirror()
    packages = sorted(set(RUNTIME_PACKAGES) | set(_linked_packages(prefix)))
    version = subprocess.run([str(python), "-c", "import platform;print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256("|".join([RECIPE, suite, str(prefix), version, *packages]).encode())
    ref = f"{REPO}:{suite}-py{version}-{key.hexdigest()[:10]}"
    image = BaseImage(ref=ref, python=str(python))
    try:
        client.images.get(ref)
        return image
    except ImageNotFound:
        pass
    if not shutil.which("debootstrap"):
        raise ImageUnavailable("the offline base needs debootstrap: apt-get install -y debootstrap")
    t0 = time.monotonic()
    log(f"base image {ref}: debootstrap {suite} ({len(packages)} packages, ~1 min)")
    with tempfile.TemporaryDirectory(prefix="oh-matrix-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
             suite, str(rootfs), mirror],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise ImageUnavailable(f"debootstrap {suite} failed: {' | '.join(tail)}")
        _copy_python(prefix, rootfs)
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        log(f"base image {ref}: importing rootfs")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import",
             "--change", f"ENV PATH={prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", "LABEL oh-matrix.image=base",
             "-", ref],
            stdin=tar.stdout, capture_output=True, text=True,
        )
        tar.wait()
        if imp.returncode != 0:
            raise ImageUnavailable(f"docker import of the base failed: {imp.stderr.strip()[:200]}")
    log(f"base image {ref}: ready in {time.monotonic() - t0:.0f} s")
    return image
