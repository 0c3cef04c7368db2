"""Image backends: where a target's app and runtime images come from.

`prepare()` is the one entry point: `official` pulls, `pypi` builds the same release from
its PyPI wheels, `auto` tries official and falls back to pypi, saying so. The adapters
never know which backend made an image.
"""

from __future__ import annotations

from pathlib import Path

import docker
from filelock import FileLock

from harness.errors import ImageUnavailable
from harness.images.model import ImageSet
from harness.images.wheels import log
from harness.paths import cache_root

__all__ = ["ImageSet", "prepare"]

_registry_unreachable: str | None = None


def prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
            constraints: Path | None = None, python312: str | None = None) -> ImageSet:
    """Images for one target. Serialized per tag across processes (xdist workers, two runs
    at once): the second caller waits and then finds the first one's images cached."""
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / f"images-{tag}.lock")):
        return _prepare(client, tag, api, backend, constraints, python312)


def _prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
             constraints: Path | None, python312: str | None) -> ImageSet:
    global _registry_unreachable
    from harness.images import official, pypi

    pull = official.pull_v0 if api == "v0" else official.pull_v1
    build = pypi.build_v0 if api == "v0" else pypi.build_v1
    if backend == "official":
        return pull(client, tag)
    if backend == "auto" and _registry_unreachable is None:
        try:
            return pull(client, tag)
        except ImageUnavailable as e:
            # One failed pull settles it for the whole run: no point asking per tag.
            _registry_unreachable = str(e)
            log(f"official images not available ({e}); building from PyPI instead")
    images = build(client, tag, constraints, python312)
    if backend == "auto":
        images.notes.append("auto: official images could not be pulled, built from PyPI")
    return images
