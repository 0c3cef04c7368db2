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

import docker
from docker.errors import APIError, ImageNotFound

from harness import knobs
from harness.errors import ImageUnavailable
from harness.images import pulled
from harness.images.wheels import log
from harness.model import ImageSet

REGISTRY = "docker.openhands.dev/openhands"  # the app (openhands) and V0 runtime (runtime) images
AGENT_SERVER_REPO = "ghcr.io/openhands/agent-server"  # the V1 sandbox image, as the app names it
AGENT_SERVER_ENV = "AGENT_SERVER_IMAGE_REPOSITORY"  # the 1.x app's setting for another repository


def registry() -> str:
    return knobs.repository("OH_MATRIX_REGISTRY") or REGISTRY


def agent_server_repository() -> str:
    chosen = knobs.repository("OH_MATRIX_AGENT_SERVER_REPOSITORY")
    mirror = knobs.repository("OH_MATRIX_REGISTRY")
    return chosen or (f"{mirror}/agent-server" if mirror else AGENT_SERVER_REPO)


def _where() -> str:
    return f" from {registry()}" if registry() != REGISTRY else ""


def _pull(client: docker.DockerClient, ref: str) -> docker.models.images.Image:
    try:
        return client.images.get(ref)
    except ImageNotFound:
        pass
    repo, _, tag = ref.rpartition(":")
    t0, last = time.monotonic(), 0.0
    try:
        for event in client.api.pull(repo, tag=tag, stream=True, decode=True):
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


def pull_v0(client: docker.DockerClient, tag: str) -> ImageSet:
    app_ref = f"{registry()}/openhands:{tag}"
    runtime_ref = f"{registry()}/runtime:{tag}-nikolaik"
    app = _pull(client, app_ref)
    _pull(client, runtime_ref)
    cfg = app.attrs.get("Config") or {}
    labels = cfg.get("Labels") or {}
    env = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
    version = (labels.get("org.opencontainers.image.version")
               or env.get("OPENHANDS_BUILD_VERSION") or tag)
    return ImageSet(tag=tag, resolved_version=version, backend="official", api="v0", app_image=app_ref,
                    runtime_image=runtime_ref, notes=[f"pulled{_where()}"])


def pull_v1(client: docker.DockerClient, tag: str) -> ImageSet:
    """The 1.x app, then the agent-server image it will ask for: named after the
    openhands-agent-server version installed in the app image (sandbox_spec_service.py)."""
    app_ref = f"{registry()}/openhands:{tag}"
    app = _pull(client, app_ref)
    probe = "import importlib.metadata as m; print(m.version('openhands-agent-server'))"
    try:
        out = client.containers.run(app_ref, ["python", "-c", probe], entrypoint=[], remove=True,
                                    network_mode="none")
    except APIError as e:
        raise ImageUnavailable(f"{app_ref}: cannot read its agent-server version: {str(e)[:200]}") from None
    agent_version = out.decode().strip().splitlines()[-1]
    repository = agent_server_repository()
    sandbox_ref = f"{repository}:{agent_version}-python"
    _pull(client, sandbox_ref)
    app_env = {AGENT_SERVER_ENV: repository} if repository != AGENT_SERVER_REPO else {}
    cfg = app.attrs.get("Config") or {}
    env = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
    version = ((cfg.get("Labels") or {}).get("org.opencontainers.image.version")
               or env.get("OPENHANDS_BUILD_VERSION") or tag)
    return ImageSet(tag=tag, resolved_version=version, backend="official", api="v1", app_image=app_ref,
                    runtime_image=sandbox_ref, app_env=app_env,
                    notes=[f"pulled{_where()}", f"agent-server {agent_version} from {repository}"])
