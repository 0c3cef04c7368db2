"""A real rootless Docker daemon for tests: docker.io's `dockerd-rootless.sh` run as an
unprivileged user of the test's own, behind Debian's RootlessKit and slirp4netns, with its
own socket (`/run/user/UID/docker.sock`) and data root, and the harness's images loaded
into it. Everything it changes on this machine is undone after: the daemon and its
namespace stop, the user (with its subordinate ids and home, the data root in it) is
removed, and /dev/net/tun gets its mode back.

The daemon's flags are the test's: slirp4netns keeps its host alias (10.0.2.2) mapped to
this machine's loopback (no `--disable-host-loopback`), so a remedy that sends a container
to "the host" reaches this machine's loopback, never its external address."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import docker

from harness.model import ImageSet

D = TypeVar("D")

USER = "oh-matrix-rootless"
PACKAGES = {"rootlesskit": "rootlesskit", "slirp4netns": "slirp4netns", "newuidmap": "uidmap"}
SCRIPT = Path("/usr/share/docker.io/contrib/dockerd-rootless.sh")  # docker.io ships it, not on PATH
TUN = Path("/dev/net/tun")


@dataclass(frozen=True)
class RootlessDaemon:
    uid: int
    socket: str

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=300)


def _sh(*cmd: str, timeout: float = 300) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)


def install() -> None:
    """Debian's packages for a rootless daemon, where root and apt can install them."""
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if not shutil.which(tool)})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, capture_output=True, env=env, timeout=600)
    if not SCRIPT.exists():
        raise RuntimeError(f"{SCRIPT} is missing: docker.io's rootless script (install docker.io)")


@contextlib.contextmanager
def _tun_open_to_users() -> Iterator[None]:
    """slirp4netns opens /dev/net/tun as the unprivileged user. Distributions ship it 0666;
    this machine's is 0600, so it is opened up for the daemon's life and given back after."""
    mode = stat.S_IMODE(TUN.stat().st_mode)
    TUN.chmod(0o666)
    try:
        yield
    finally:
        TUN.chmod(mode)


@contextlib.contextmanager
def _user() -> Iterator[pwd.struct_passwd]:
    """A user of the test's own, with subordinate ids (useradd gives them) and a runtime dir."""
    with contextlib.suppress(KeyError):  # a crashed earlier test's: start clean
        pwd.getpwnam(USER)
        subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
        subprocess.run(["userdel", "-r", "-f", USER], capture_output=True)
    _sh("useradd", "--create-home", "--shell", "/bin/sh", USER)
    user = pwd.getpwnam(USER)
    runtime = Path(f"/run/user/{user.pw_uid}")
    runtime.mkdir(parents=True, exist_ok=True)
    os.chown(runtime, user.pw_uid, user.pw_gid)
    runtime.chmod(0o700)
    try:
        yield user
    finally:
        subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
        time.sleep(0.5)
        shutil.rmtree(runtime, ignore_errors=True)
        subprocess.run(["userdel", "-r", "-f", USER], capture_output=True)
        shutil.rmtree(user.pw_dir, ignore_errors=True)  # files of subordinate ids userdel leaves


@contextlib.contextmanager
def rootless_daemon(*flags: str, host_loopback: bool = True) -> Iterator[RootlessDaemon]:
    """A rootless dockerd up and answering; stopped and removed after, on any exit.
    `host_loopback`: slirp4netns maps its host alias to this machine's loopback (docker's
    script passes --disable-host-loopback unless told otherwise)."""
    install()
    with _tun_open_to_users(), _user() as user:
        runtime = f"/run/user/{user.pw_uid}"
        env = {"HOME": user.pw_dir, "USER": USER, "XDG_RUNTIME_DIR": runtime,
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               # docker.io 20.10's script passes --disable-host-loopback itself; its extra flags
               # come later on RootlessKit's command line, and the last one wins
               "DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS": "" if not host_loopback else "--disable-host-loopback=false"}
        log = open(Path(user.pw_dir) / "dockerd.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen([str(SCRIPT), "--data-root", f"{user.pw_dir}/data", *flags],
                                env=env, cwd=user.pw_dir, user=user.pw_uid, group=user.pw_gid,
                                extra_groups=[], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        daemon = RootlessDaemon(user.pw_uid, f"{runtime}/docker.sock")
        try:
            wait_up(daemon.client, proc, Path(user.pw_dir) / "dockerd.log", "the rootless daemon", 60)
            yield daemon
        finally:
            stop(proc, 30)
            log.close()


def wait_up(client: Callable[[], docker.DockerClient], proc: subprocess.Popen[bytes], log: Path,
            what: str, seconds: float) -> None:
    """Until a daemon started as `proc` answers a ping; its log's tail if it exits or never does."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(docker.errors.DockerException):
            client().ping()
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """A daemon's process group: SIGTERM, then SIGKILL after `seconds`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def harness_images(client: docker.DockerClient, *sets: ImageSet) -> list[str]:
    """What a cell needs on another daemon: the sets' app and runtime images, the base and
    placeholder images the harness builds, by tag."""
    images = {i for s in sets for i in (s.app_image, s.runtime_image) if i}
    # tagged ones only: an untagged leftover (a rebuild's, a test's committed image) names nothing to save
    images |= {i.tags[0] for i in client.images.list(filters={"label": "oh-matrix.image=base"}) if i.tags}
    images |= {t for i in client.images.list(filters={"label": "oh-matrix.image=placeholder"}) for t in i.tags}
    return sorted(images)


@contextlib.contextmanager
def loaded(daemon: contextlib.AbstractContextManager[D], client: docker.DockerClient, *sets: ImageSet) -> Iterator[D]:
    """A second daemon (`daemon`: rootless, remote, one of a test's own), up with the images a
    cell of `sets` needs copied into it, for the length of the block."""
    images = harness_images(client, *sets)
    with daemon as d:
        load_images(d.docker_host, *images)  # type: ignore[attr-defined]
        yield d


def load_images(docker_host: str, *images: str) -> None:
    """This machine's daemon's images, copied into another daemon (rootless, remote) in one
    `docker save | docker load`, so the layers they share (the base) are copied once."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", docker_host, "load", "-q"], stdin=save.stdout,
                   check=True, capture_output=True, timeout=900)
    if save.wait() != 0:
        raise RuntimeError(f"docker save {' '.join(images)} failed")
