"""Image backends: where a target's app and runtime images come from.

`prepare()` gives one target's images: `official` pulls, `pypi` builds the same release
from its PyPI wheels (and, for releases in true_sources.toml, the packages it really ran
with from their git commit), `auto` tries official and falls back to pypi, saying so.
Which function pulls or builds a release is its API generation's entry
(harness/generations.py). `prepare_all()` does several targets at once. The adapters never
know which backend made an image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from filelock import FileLock

from harness import generations
from harness.errors import ImageUnavailable, InputError
from harness.images.failures import forget_all as forget_failures
from harness.images.listing import build_lines, image_rows, prune, pulled_rows
from harness.images.wheels import current_tag, log
from harness.model import ImageSet
from harness.paths import cache_root

__all__ = ["ImageSet", "ImageUnavailable", "build_lines", "forget_failures", "image_rows", "prepare", "prepare_all",
           "prepare_own", "prune", "pulled_rows"]

_registry_unreachable: str | None = None


def prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
            constraints: Path | None = None, python312: str | None = None) -> ImageSet:
    """Images for one target. Serialized per tag across processes (xdist workers, two runs
    at once): the second caller waits and then finds the first one's images cached."""
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    token = current_tag.set(tag)  # every progress line names the release it is about
    try:
        with FileLock(str(locks / f"images-{tag}.lock")):
            images = _prepare(client, tag, api, backend, constraints, python312)
        _check_generation(images)
        return images
    finally:
        current_tag.reset(token)


def prepare_own(client: docker.DockerClient, tag: str, api: str, ref: str, environment: dict[str, str],
                backend: str) -> ImageSet:
    """A deployment's own image as a target (harness/images/own.py), checked like a release's."""
    from harness.images import own

    token = current_tag.set(tag)
    try:
        images = own.prepare(client, tag, api, ref, environment, pull=backend != "pypi")
        _check_generation(images, "say which with `api` in the deployment's table of the matrix")
        return images
    finally:
        current_tag.reset(token)


def prepare_all(client: docker.DockerClient, targets: Sequence[tuple[str, str] | tuple[str, str, Path | None]],
                backend: str, constraints: Path | None = None, python312: str | None = None,
                workers: int | None = None) -> dict[str, ImageSet | ImageUnavailable]:
    """Images for several targets (`(tag, api)` pairs, or `(tag, api, constraints)` for a
    target with constraints of its own) at once: {tag: ImageSet, or the ImageUnavailable
    that says why not}, in the targets' order.

    One thread per release, so what can overlap does: one release's wheel downloads and
    image builds run while another's venv installs. The CPU-heavy venv installs take one
    core each at most (pypi._slots); the per-tag and base locks still hold, across
    processes too. Each progress line is prefixed with its release. Any error other than
    ImageUnavailable (Docker gone, a bad tag) is raised once every release has stopped.
    """
    todo = list(dict.fromkeys(targets))
    if not todo:
        return {}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers or len(todo), thread_name_prefix="oh-matrix-images") as pool:
        futures = {t[0]: pool.submit(prepare, client, t[0], t[1], backend,
                                     t[2] if len(t) > 2 else constraints, python312)
                   for t in todo}
        results: dict[str, ImageSet | ImageUnavailable] = {}
        error: BaseException | None = None
        for tag, future in futures.items():
            try:
                results[tag] = future.result()
            except ImageUnavailable as e:
                results[tag] = e
            except BaseException as e:
                error = error or e
    if error is not None:
        raise error
    failed = [tag for tag, r in results.items() if isinstance(r, ImageUnavailable)]
    log(f"{len(todo)} release(s) in {time.monotonic() - t0:.0f} s"
        + (f"; unavailable: {', '.join(failed)}" if failed else ""))
    return results


def _prepare(client: docker.DockerClient, tag: str, api: str, backend: str,
             constraints: Path | None, python312: str | None) -> ImageSet:
    global _registry_unreachable
    gen = generations.get(api)
    pull = gen.load(gen.official_images)
    build = gen.load(gen.pypi_images)
    if backend == "official":
        pulled: ImageSet = pull(client, tag, gen)
        return pulled
    if backend == "auto" and _registry_unreachable is None:
        try:
            pulled = pull(client, tag, gen)
            return pulled
        except ImageUnavailable as e:
            # One failed pull settles it for the whole run: no point asking per tag.
            _registry_unreachable = str(e)
            log(f"official images not available ({e}); building from PyPI instead")
    images: ImageSet = build(client, tag, gen, constraints, python312)
    if backend == "auto":
        images.notes.append("auto: official images could not be pulled, built from PyPI")
    return images


def _check_generation(images: ImageSet, fix: str = "add or point an entry in harness/generations.py") -> None:
    """`latest` (or a tag the matrix pinned to a generation) must have resolved to a release
    of that generation: an adapter for the wrong API would report nonsense, not a verdict.
    Agent Canvas's versions are its own (npm), so its builds resolve only within it."""
    if not generations.get(images.api).majors:
        return
    try:
        actual = generations.for_tag(images.resolved_version)
    except InputError:  # a version that names no known generation
        actual = None
    if actual is None or actual.name != images.api:
        found = actual.name if actual else "none"
        raise ImageUnavailable(
            f"{images.tag} resolved to {images.resolved_version}, whose API generation is {found}, "
            f"not {images.api}: {fix}", images.resolved_version)
