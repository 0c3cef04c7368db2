"""Labels on everything the harness creates, and the sweeps that remove it.

A run is owned by one process (the `oh-matrix run` / pytest controller). Its resources
carry `oh-matrix.run=<run_id>` and `oh-matrix.owner=<host>:<pid>`; a sweep removes only
resources whose owner process is gone, so two runs on one daemon never remove each
other's live containers. Runtimes that OpenHands creates get the same labels where
OpenHands passes them through (V0: `SANDBOX_DOCKER_RUNTIME_KWARGS`, see cells/plan.py); where it
cannot (the V1 sandbox), their names go into a run registry on disk as soon as they are
known, so a sweep after a crash still finds them, and never touches an OpenHands
container that is not the harness's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from harness.host import processes
from harness.paths import cache_root

RUN_LABEL = "oh-matrix.run"
CELL_LABEL = "oh-matrix.cell"
OWNER_LABEL = "oh-matrix.owner"
BUILD_LABEL = "oh-matrix.build"
ROLE_LABEL = "oh-matrix.role"  # sidecar: lives in another container's namespace, removed first


def owner() -> str:
    pid = os.environ.get("OH_MATRIX_OWNER_PID") or str(os.getpid())
    return f"{socket.gethostname()}:{pid}"


def labels(run_id: str, cell_id: str | None = None) -> dict[str, str]:
    out = {RUN_LABEL: run_id, OWNER_LABEL: owner()}
    if cell_id:
        out[CELL_LABEL] = cell_id
    return out


def _owner_alive(value: str | None) -> bool:
    if not value or ":" not in value:
        return False
    host, _, pid = value.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's run on a shared daemon: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _registry(run_id: str) -> Path:
    return cache_root() / "runs" / run_id


def _owned_registry(run_id: str) -> Path:
    d = _registry(run_id)
    d.mkdir(parents=True, exist_ok=True)
    (d / "owner").write_text(owner())
    return d


def register(run_id: str, container_name: str) -> None:
    """Remember a container OpenHands will create for this run (one file per name: xdist
    workers write concurrently)."""
    (_owned_registry(run_id) / f"{container_name}.name").write_text(container_name)


def unregister(run_id: str, container_name: str) -> None:
    """Forget a container its cell has removed; the run's folder goes with its last name."""
    (_registry(run_id) / f"{container_name}.name").unlink(missing_ok=True)
    _forget_if_empty(_registry(run_id))


def _forget_if_empty(d: Path) -> None:
    """The run's folder goes with its last name or forward."""
    if d.is_dir() and not any(any(d.glob(f"*.{kind}")) for kind in ("name", "forward")):
        shutil.rmtree(d, ignore_errors=True)


def register_forward(run_id: str, api_socket: str, forward_id: int) -> str:
    """Remember a port forward a cell asked a rootless daemon's RootlessKit for (it carries no
    label), so the sweep after a crash removes it too; returns its registry key."""
    key = f"rootlesskit-{forward_id}"
    (_owned_registry(run_id) / f"{key}.forward").write_text(json.dumps({"api_socket": api_socket, "id": forward_id}))
    return key


def unregister_forward(run_id: str, key: str) -> None:
    (_registry(run_id) / f"{key}.forward").unlink(missing_ok=True)
    _forget_if_empty(_registry(run_id))


def _remove_forwards(d: Path) -> None:
    from harness.host import rootlesskit

    for f in d.glob("*.forward"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            entry = json.loads(f.read_text())
            rootlesskit.unforward(str(entry["api_socket"]), int(entry["id"]))
        f.unlink(missing_ok=True)


@dataclass
class SweepReport:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # cells' temporary folders (a deployment's mounts)
    processes: list[str] = field(default_factory=list)  # host processes (the native install's, processes.py)

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.folders or self.processes)

    def summary(self) -> str:
        folders = f", {len(self.folders)} folders" if self.folders else ""
        procs = f", {len(self.processes)} processes" if self.processes else ""
        return f"{len(self.containers)} containers, {len(self.networks)} networks{folders}{procs}"


def remove_container(c: docker.models.containers.Container) -> bool:
    try:
        c.remove(force=True, v=True)
        return True
    except NotFound:
        return False
    except APIError as e:
        if "already in progress" in str(e):
            return False
        raise


def remove_network(n: docker.models.networks.Network) -> bool:
    try:
        n.remove()
        return True
    except NotFound:
        return False


def name_prefix(run_id: str) -> str:
    """What the names of a run's containers, networks and folders start with."""
    return f"oh-matrix-{run_id[:8]}"


def scratch_folders(run_id: str) -> list[str]:
    """Remove the temporary folders the run's cells made (CellResources.scratch: a deployment's
    mounts), which a worker that died never removed; the ones removed are returned."""
    gone = []
    for folder in Path(tempfile.gettempdir()).glob(f"{name_prefix(run_id)}-*"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(str(folder))
    return gone


def _inherited(c: docker.models.containers.Container, label: str) -> bool:
    """Whether the container has `label` from its image: a committed build container's labels
    stay on the image it made, so every container started from that image (a cell's app, a
    person's own) carries them, and none of those is a build left behind."""
    try:
        image = c.client.api.inspect_image(c.attrs["Image"])
    except (NotFound, APIError):  # its image is gone: only a build's own container is left so
        return False
    image_labels = (image.get("Config") or {}).get("Labels") or {}
    return label in image_labels and image_labels[label] == c.labels.get(label)


def sweep(client: docker.DockerClient, run_id: str | None = None, *,
          include_live: bool = False) -> SweepReport:
    """Remove what finished or crashed runs left: containers first, then networks.

    `run_id` limits the sweep to one run (a cell's or run's own teardown);
    `include_live` also takes runs whose owner still lives (`oh-matrix clean --all`).
    """
    report = SweepReport(processes=processes.sweep(_owner_alive, run_id, include_live))
    filt = {"label": f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL}

    def ours(lbls: dict[str, str]) -> bool:
        return bool(run_id) or include_live or not _owner_alive(lbls.get(OWNER_LABEL))

    # ignore_removed: a container that goes between the daemon's list and its inspect (another
    # run's, or this cell's own teardown) is not an error of the sweep's (seen under CI's load)
    for c in client.containers.list(all=True, filters=filt, ignore_removed=True):
        if ours(c.labels) and remove_container(c):
            report.containers.append(c.name)
    for c in client.containers.list(all=True, filters={"label": BUILD_LABEL}, ignore_removed=True):
        if _inherited(c, BUILD_LABEL):  # a container of an image a build committed: not a build's own
            continue
        if (include_live or not _owner_alive(c.labels.get(OWNER_LABEL))) and remove_container(c):
            report.containers.append(c.name)
    runs = [_registry(run_id)] if run_id else sorted((cache_root() / "runs").glob("*"))
    for d in runs:
        if not d.is_dir():
            continue
        owner_file = d / "owner"
        who = owner_file.read_text() if owner_file.exists() else None
        if not (run_id or include_live or not _owner_alive(who)):
            continue
        for f in d.glob("*.name"):
            try:
                if remove_container(client.containers.get(f.read_text().strip())):
                    report.containers.append(f.read_text().strip())
            except NotFound:
                pass
        _remove_forwards(d)
        report.folders += scratch_folders(d.name)
        shutil.rmtree(d, ignore_errors=True)
    for n in client.networks.list(filters=filt):
        if ours(n.attrs.get("Labels") or {}) and remove_network(n):
            report.networks.append(n.name)
    return report
