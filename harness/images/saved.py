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


def load(client: docker.DockerClient, folder: Path) -> list[str]:
    """Every image tar in `folder`, loaded into the daemon; the names it now has."""
    if not folder.is_dir():
        raise InputError(f"images load --from {folder}: no such folder")
    names = []
    for path in sorted(folder.glob("*.tar")):
        with path.open("rb") as f:
            for image in client.images.load(f):
                names += image.tags
        log(f"loaded {path.name}")
    return names
