"""A real podman for tests: Debian 12's podman 4.3.1 answering the Docker API
(`podman system service --time=0 unix:///run/oh-matrix-podman.sock`), rootful, with
storage, run state, networks and events of the test's own under one temp root, so nothing
of the machine's own podman state (/var/lib/containers, /run/containers, /etc/containers/
networks) is read or written; the harness's images copied in from this machine's daemon.

Its settings are the test's, each for a reason measured here (docs/podman.md):
- `default_ulimits` within this machine's own (nofile 20000, nproc 4096): podman raises
  RLIMIT_NOFILE/NPROC for root's containers past what this machine allows, and runc then
  refuses every container (`error setting rlimit type 7: operation not permitted`).
- runc, not crun: crun 1.8 refuses this machine's hybrid cgroups (podman prefers crun).
- the file events backend and cgroupfs: no journald or systemd here.

Everything it changes on this machine is undone after: the service stops, what its
containers left running (conmon's exec sessions, which wait 300 s for their exit) is
killed by pid, its mounts go with its root, and the netavark chains it added to iptables
(NETAVARK_*; none of Docker's) are removed when they were not there before."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import rootless

PACKAGES = ("podman", "netavark", "aardvark-dns")
SOCKET = "/run/oh-matrix-podman.sock"
CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
events_logger = "file"
cgroup_manager = "cgroupfs"
tmp_dir = "{root}/tmp"
[network]
network_backend = "netavark"
network_config_dir = "{root}/networks"
"""


@dataclass(frozen=True)
class Podman:
    socket: str
    root: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=300)


def install() -> None:
    """Debian's podman (4.3.1 on Debian 12) with netavark, where root and apt can install it;
    without recommends: crun stays out (see above)."""
    if not shutil.which("podman"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                       check=True, capture_output=True, env=env, timeout=900)


def _netavark_chains() -> set[tuple[str, str]]:
    """(table, chain) of netavark's chains in this machine's iptables."""
    out = set()
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, timeout=30).stdout
        out |= {(table, line.split()[1]) for line in rules.splitlines()
                if line.startswith("-N NETAVARK")}
    return out


def _drop_chains(chains: set[tuple[str, str]]) -> None:
    """netavark's chains (and the jumps to them from the built-in chains), removed."""
    for table in {t for t, _ in chains}:
        names = {c for t, c in chains if t == table}
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, timeout=30).stdout
        for line in rules.splitlines():
            parts = line.split()
            jumps = "-j" in parts and parts[parts.index("-j") + 1] in names
            if parts[:1] == ["-A"] and parts[1] not in names and jumps:
                subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True, timeout=30)
        for name in names:
            subprocess.run(["iptables", "-t", table, "-F", name], capture_output=True, timeout=30)
        for name in names:
            subprocess.run(["iptables", "-t", table, "-X", name], capture_output=True, timeout=30)


def _kill_leftovers(root: Path) -> None:
    """What podman started for this root and left behind (conmon of exec sessions), by pid."""
    needle = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), 9)


@contextlib.contextmanager
def podman_service() -> Iterator[Podman]:
    """Rootful podman's Docker API up and answering at SOCKET; stopped and removed after."""
    install()
    root = Path(tempfile.mkdtemp(prefix="oh-matrix-podman-"))
    (root / "tmp").mkdir()
    (root / "networks").mkdir()
    conf = root / "containers.conf"
    conf.write_text(CONF.format(root=root))
    chains_before = _netavark_chains()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET)  # a crashed earlier test's
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    log = open(root / "service.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"),
                             "system", "service", "--time=0", f"unix://{SOCKET}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = Podman(SOCKET, root)
    try:
        rootless.wait_up(service.client, proc, root / "service.log", "podman's service", 60)
        yield service
    finally:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            c = service.client()
            for container in c.containers.list(all=True):
                container.remove(force=True)
            for net in c.networks.list():
                if net.name not in ("bridge", "podman"):
                    net.remove()
        rootless.stop(proc, 30)
        log.close()
        _kill_leftovers(root)
        time.sleep(0.5)
        subprocess.run(["umount", "-R", str(root / "storage" / "overlay")], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "run")], capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET)
        added = _netavark_chains() - chains_before
        _drop_chains(added)
        subprocess.run(["ip", "link", "del", "podman0"], capture_output=True)  # netavark's bridge, if left
        shutil.rmtree(root, ignore_errors=True)


def load_images(service: Podman, *images: str) -> list[str]:
    """This machine's daemon's images copied into podman in one `docker save | docker load`,
    those podman already holds by image id skipped (podman keeps Docker's image ids); the
    ones copied, by tag. Podman names what it loads `localhost/NAME` when NAME has no
    registry; the Docker API finds it by the short name too."""
    here = docker.from_env(timeout=300)
    held = {i.id for i in service.client().images.list()}
    missing = [i for i in images if here.images.get(i).id not in held]
    if missing:
        rootless.load_images(service.docker_host, *missing)
    return missing
