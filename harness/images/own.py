"""A deployment's own image as a target of its own (docs/deployments.md): the image the
user's compose service or `docker run` line names, run as they run it.

The image is the daemon's if it has it, else pulled (harness/images/official.fetch), except
with the `pypi` backend, which pulls nothing (an air-gapped host builds its releases); its
release is what the image says of itself, or its tag. The runtime it will start is the one
the deployment names, so it is fetched before the cell starts, and a runtime that cannot be
had is this target's `image-unavailable` in seconds instead of the app's own wait on a pull:

- 0.x: the deployment's runtime image setting (SANDBOX_RUNTIME_CONTAINER_IMAGE), else the
  image's own default for it; with neither, the app builds a runtime of its own, as it would
  on the user's host;
- 1.x: the agent-server image the app asks for (AGENT_SERVER_IMAGE_REPOSITORY and
  AGENT_SERVER_IMAGE_TAG as the deployment sets them, else the app's own defaults).
"""

from __future__ import annotations

import docker
from docker.errors import ImageNotFound

from harness import generations
from harness.errors import ImageUnavailable
from harness.images import official
from harness.model import ImageSet


def prepare(client: docker.DockerClient, tag: str, api: str, ref: str, environment: dict[str, str],
            pull: bool = True) -> ImageSet:
    gen = generations.get(api)

    def fetch(wanted: str) -> docker.models.images.Image:
        if not pull:
            try:
                return client.images.get(wanted)
            except ImageNotFound:
                raise ImageUnavailable(f"{wanted}: not on this daemon, and the pypi backend pulls nothing "
                                       "(the auto and official backends pull it)") from None
        return official.fetch(client, wanted)

    image = fetch(ref)
    version = official.image_version(image, "")
    if not version:
        version = official.installed(client, ref, gen.release_package)
    notes = [f"your deployment's own image {ref}, as this daemon has it or pulled it"]
    runtime = ""
    if gen.runtime_is_app:  # the agent runs in the image's own container (Agent Canvas, the agent-server)
        runtime = ref
    elif gen.runtime_image_env:
        runtime = environment.get(gen.runtime_image_env) or official.image_env(image).get(gen.runtime_image_env, "")
        if runtime:
            fetch(runtime)
        else:
            notes.append(f"no {gen.runtime_image_env}: the app builds its own runtime image, as on your host")
    else:
        repository = environment.get(official.AGENT_SERVER_ENV) or official.AGENT_SERVER_REPO
        runtime = official.sandbox_image(client, ref, repository, environment.get(official.AGENT_SERVER_TAG_ENV), fetch)
        notes.append(f"the sandbox image it asks for: {runtime}")
    return ImageSet(tag=tag, resolved_version=version, backend="own", api=api, app_image=ref,
                    runtime_image=runtime, notes=notes)
