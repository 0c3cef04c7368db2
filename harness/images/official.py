"""The `official` backend: the OpenHands project's own images from its registry."""

from __future__ import annotations

import time

import docker
from docker.errors import APIError, ImageNotFound

from harness.errors import ImageUnavailable
from harness.images.wheels import log
from harness.model import ImageSet

REGISTRY = "docker.openhands.dev/openhands"


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
    return client.images.get(ref)


def pull_v0(client: docker.DockerClient, tag: str) -> ImageSet:
    app_ref = f"{REGISTRY}/openhands:{tag}"
    runtime_ref = f"{REGISTRY}/runtime:{tag}-nikolaik"
    app = _pull(client, app_ref)
    _pull(client, runtime_ref)
    cfg = app.attrs.get("Config") or {}
    labels = cfg.get("Labels") or {}
    env = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
    version = (labels.get("org.opencontainers.image.version")
               or env.get("OPENHANDS_BUILD_VERSION") or tag)
    return ImageSet(tag=tag, resolved_version=version, backend="official", api="v0", app_image=app_ref,
                    runtime_image=runtime_ref, notes=["pulled"])


def pull_v1(client: docker.DockerClient, tag: str) -> ImageSet:
    """The 1.x app, then the agent-server image it will ask for: named after the
    openhands-agent-server version installed in the app image (sandbox_spec_service.py)."""
    app_ref = f"{REGISTRY}/openhands:{tag}"
    app = _pull(client, app_ref)
    probe = "import importlib.metadata as m; print(m.version('openhands-agent-server'))"
    try:
        out = client.containers.run(app_ref, ["python", "-c", probe], entrypoint=[], remove=True,
                                    network_mode="none")
    except APIError as e:
        raise ImageUnavailable(f"{app_ref}: cannot read its agent-server version: {str(e)[:200]}") from None
    agent_version = out.decode().strip().splitlines()[-1]
    sandbox_ref = f"ghcr.io/openhands/agent-server:{agent_version}-python"
    _pull(client, sandbox_ref)
    cfg = app.attrs.get("Config") or {}
    env = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
    version = ((cfg.get("Labels") or {}).get("org.opencontainers.image.version")
               or env.get("OPENHANDS_BUILD_VERSION") or tag)
    return ImageSet(tag=tag, resolved_version=version, backend="official", api="v1", app_image=app_ref,
                    runtime_image=sandbox_ref, notes=["pulled", f"agent-server {agent_version}"])
