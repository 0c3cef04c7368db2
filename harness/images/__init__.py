"""Image backends: where a target's app and runtime images come from.

`prepare()` is the one entry point: `official` pulls, `pypi` builds the same release from
its PyPI wheels, `auto` tries official and falls back to pypi, saying so. The adapters
never know which backend made an image.
"""

from __future__ import annotations

from pathlib import Path

import docker

from harness.errors import ImageUnavailable
from harness.images.model import ImageSet
from harness.images.wheels import log

__all__ = ["ImageSet", "prepare"]

_registry_unreachable: str | None = None


def prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
            constraints: Path | None = None, python312: str | None = None) -> ImageSet:
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
