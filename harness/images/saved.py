"""Images carried between machines or nights as `docker save` tars: `oh-matrix images save
--to DIR` and `images load --from DIR`. The nightly workflow keeps the offline base image in
the Actions cache this way, so a cold runner skips its debootstrap."""

from __future__ import annotations

import re
from pathlib import Path

import docker

from harness.errors import InputError
from harness.images.wheels import log
from harness.output import write_bytes_atomic


def save(client: docker.DockerClient, folder: Path, kind: str = "base") -> list[Path]:
    """Every oh-matrix image of `kind` as `<name>.tar` in `folder` (none built: nothing saved)."""
    written = []
    for image in client.images.list(filters={"label": f"oh-matrix.image={kind}"}):
        for tag in image.tags:
            path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", tag) + ".tar")
            if path.exists():
                continue  # the same name: saved before (names carry the image's content key)
            write_bytes_atomic(path, b"".join(client.images.get(tag).save(named=True)))
            log(f"saved {tag} to {path}")
            written.append(path)
    return written


def tars(folder: Path) -> list[Path]:
    """The image tars `images load --from` would load, each one readable: checked before the
    daemon is asked, so a wrong folder is one line naming it. An empty folder is no error (a
    save with nothing built saved nothing, and the nightly caches that folder as it is)."""
    where = f"images load --from {folder}"
    if not folder.exists():
        raise InputError(f"{where}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{where}: not a folder")
    try:
        found = sorted(folder.glob("*.tar"))
        for path in found:
            with path.open("rb") as f:
                f.read(1)
    except OSError as e:
        raise InputError(f"{where}: cannot read {e.filename or folder}: {e.strerror or e}") from None
    return found


def load(client: docker.DockerClient, folder: Path) -> list[str]:
    """Every image tar in `folder`, loaded into the daemon; the names it now has."""
    names = []
    for path in tars(folder):
        with path.open("rb") as f:
            for image in client.images.load(f):
                names += image.tags
        log(f"loaded {path.name}")
    return names
