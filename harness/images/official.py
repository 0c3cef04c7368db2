"""The `official` backend: the OpenHands project's own images from its registry, or from
the mirror the user names (docs/images.md):

    OH_MATRIX_REGISTRY=registry.example:5000/openhands    app and runtime images
    OH_MATRIX_AGENT_SERVER_REPOSITORY=...                  1.x sandbox image (default with a
                                                           registry: REGISTRY/agent-server)

A 1.x app asks for its sandbox image by name (sandbox_spec_service.get_agent_server_image);
from a mirror it is told the mirror's repository with AGENT_SERVER_IMAGE_REPOSITORY, which
the cell sets and the `docker run` line shows (ImageSet.app_env).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker
from docker.errors import APIError, ContainerError, ImageNotFound
from docker.utils import parse_repository_tag

from harness import knobs
from harness.errors import ImageUnavailable
from harness.generations import Generation
from harness.images import pulled
from harness.images.wheels import log
from harness.model import ImageSet

REGISTRY = "docker.openhands.dev/openhands"  # the app (openhands) and V0 runtime (runtime) images
AGENT_SERVER_REPO = "ghcr.io/openhands/agent-server"  # the V1 sandbox image, as the app names it
AGENT_SERVER_ENV = "AGENT_SERVER_IMAGE_REPOSITORY"  # the 1.x app's setting for another repository
AGENT_SERVER_TAG_ENV = "AGENT_SERVER_IMAGE_TAG"  # ... and for another tag (default: its own version-python)


def registry() -> str:
    return knobs.repository("OH_MATRIX_REGISTRY") or REGISTRY


def agent_server_repository() -> str:
    chosen = knobs.repository("OH_MATRIX_AGENT_SERVER_REPOSITORY")
    mirror = knobs.repository("OH_MATRIX_REGISTRY")
    return chosen or (f"{mirror}/agent-server" if mirror else AGENT_SERVER_REPO)


def _where() -> str:
    return f" from {registry()}" if registry() != REGISTRY else ""


def fetch(client: docker.DockerClient, ref: str) -> docker.models.images.Image:
    """The image `ref` as the daemon has it, else pulled (and remembered as the harness's)."""
    try:
        return client.images.get(ref)
    except ImageNotFound:
        pass
    repo, tag = parse_repository_tag(ref)  # a registry's :port, a digest and no tag alike
    t0, last = time.monotonic(), 0.0
    try:
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise ImageUnavailable(f"pull {ref}: {event['error'][:200]}")
            if time.monotonic() - last > 10:
                last = time.monotonic()
                log(f"pull {ref}: {event.get('status', '')} {event.get('progress', '')}".rstrip())
    except APIError as e:
        raise ImageUnavailable(f"pull {ref}: {(e.explanation or str(e))[:200]}") from None
    log(f"pull {ref}: done in {time.monotonic() - t0:.0f} s")
    image = client.images.get(ref)
    pulled.remember(ref, image.id)  # ours now: images list shows it, images prune may remove it
    return image


def image_env(image: docker.models.images.Image) -> dict[str, str]:
    """The environment an image bakes in (its Config.Env)."""
    return dict(e.partition("=")[::2] for e in (image.attrs.get("Config") or {}).get("Env") or [])


def image_version(image: docker.models.images.Image, tag: str) -> str:
    """The release an app image is, as it says itself (OCI label, the build's env), else its tag."""
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    # the OCI label (official images), the harness's own (its builds, and images made FROM them)
    label = labels.get("org.opencontainers.image.version") or labels.get("oh-matrix.release")
    return str(label or image_env(image).get("OPENHANDS_BUILD_VERSION") or tag)


def installed(client: docker.DockerClient, ref: str, package: str) -> str:
    """The version of `package` installed in image `ref`, read by its own Python (no network)."""
    probe = f"import importlib.metadata as m; print(m.version({package!r}))"
    # python as the entrypoint: podman 4.3.1 keeps the image's own for an empty one (Docker clears it)
    try:
        out = client.containers.run(ref, ["-c", probe], entrypoint=["python"], remove=True, network_mode="none")
    except (APIError, ContainerError) as e:  # no such image, or no such package in it
        raise ImageUnavailable(f"{ref}: cannot read its {package} version: {str(e)[-200:]}") from None
    return str(out.decode().strip().splitlines()[-1])


def sandbox_image(client: docker.DockerClient, app_ref: str, repository: str, tag: str | None = None,
                  get: Callable[[str], object] | None = None) -> str:
    """The agent-server image a 1.x app asks for (sandbox_spec_service.get_agent_server_image):
    REPOSITORY:TAG, TAG by default the app's own openhands-agent-server version + `-python`;
    got with `get` (default: pulled unless the daemon has it)."""
    sandbox_ref = f"{repository}:{tag or installed(client, app_ref, 'openhands-agent-server') + '-python'}"
    (get or (lambda ref: fetch(client, ref)))(sandbox_ref)
    return sandbox_ref


def pull_v0(client: docker.DockerClient, tag: str, gen: Generation) -> ImageSet:
    app_ref = f"{registry()}/openhands:{tag}"
    runtime_ref = f"{registry()}/runtime:{tag}-nikolaik"
    app = fetch(client, app_ref)
    fetch(client, runtime_ref)
    return ImageSet(tag=tag, resolved_version=image_version(app, tag), backend="official", api=gen.name,
                    app_image=app_ref, runtime_image=runtime_ref, notes=[f"pulled{_where()}"])


def pull_v1(client: docker.DockerClient, tag: str, gen: Generation) -> ImageSet:
    """The 1.x app, then the agent-server image it will ask for."""
    app_ref = f"{registry()}/openhands:{tag}"
    app = fetch(client, app_ref)
    repository = agent_server_repository()
    sandbox_ref = sandbox_image(client, app_ref, repository)
    app_env = {AGENT_SERVER_ENV: repository} if repository != AGENT_SERVER_REPO else {}
    return ImageSet(tag=tag, resolved_version=image_version(app, tag), backend="official", api=gen.name,
                    app_image=app_ref, runtime_image=sandbox_ref, app_env=app_env,
                    notes=[f"pulled{_where()}",
                           f"agent-server {sandbox_ref.rpartition(':')[2].removesuffix('-python')} from {repository}"])
