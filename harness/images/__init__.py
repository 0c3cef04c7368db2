"""Image backends: where a target's app and runtime images come from.

`prepare()` is the one entry point: `official` pulls, `pypi` builds the same release from
its PyPI wheels, `auto` tries official and falls back to pypi, saying so. Which function
pulls or builds a release is its API generation's entry (harness/generations.py). The
adapters never know which backend made an image.
"""

from __future__ import annotations

from pathlib import Path

import docker
from filelock import FileLock

from harness import generations
from harness.errors import ImageUnavailable, InputError
from harness.images.wheels import log
from harness.model import ImageSet
from harness.paths import cache_root

__all__ = ["ImageSet", "ImageUnavailable", "prepare"]

_registry_unreachable: str | None = None


def prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
            constraints: Path | None = None, python312: str | None = None) -> ImageSet:
    """Images for one target. Serialized per tag across processes (xdist workers, two runs
    at once): the second caller waits and then finds the first one's images cached."""
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / f"images-{tag}.lock")):
        images = _prepare(client, tag, api, backend, constraints, python312)
    _check_generation(images)
    return images


def _prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
             constraints: Path | None, python312: str | None) -> ImageSet:
    global _registry_unreachable
    gen = generations.get(api)
    pull = gen.load(gen.official_images)
    build = gen.load(gen.pypi_images)
    if backend == "official":
        pulled: ImageSet = pull(client, tag)
        return pulled
    if backend == "auto" and _registry_unreachable is None:
        try:
            pulled = pull(client, tag)
            return pulled
        except ImageUnavailable as e:
            # One failed pull settles it for the whole run: no point asking per tag.
            _registry_unreachable = str(e)
            log(f"official images not available ({e}); building from PyPI instead")
    images: ImageSet = build(client, tag, constraints, python312)
    if backend == "auto":
        images.notes.append("auto: official images could not be pulled, built from PyPI")
    return images


def _check_generation(images: ImageSet) -> None:
    """`latest` (or a tag the matrix pinned to a generation) must have resolved to a release
    of that generation: an adapter for the wrong API would report nonsense, not a verdict."""
    try:
        actual = generations.for_tag(images.resolved_version)
    except InputError:  # a version that names no known generation
        actual = None
    if actual is None or actual.name != images.api:
        found = actual.name if actual else "none"
        raise ImageUnavailable(
            f"{images.tag} resolved to {images.resolved_version}, whose API generation is {found}, "
            f"not {images.api}: add or point an entry in harness/generations.py", images.resolved_version)
