"""The image a docker-workspace caller runs in (harness/cells/workspace.py): a script's or a
CI job's container that drives the SDK's `DockerWorkspace`. It is the release's agent-server
image (the SDK and the agent-server at the release's pins) with what such a job adds:
`openhands-workspace` at the same version, as PyPI has it, and the docker CLI that
DockerWorkspace runs (`docker run`, `docker inspect`, `docker logs`, `docker stop`).

The docker CLI is this machine's own (a static binary), so the caller speaks to the daemon as
this machine does; the wheel comes through the wheel store; the build has no network.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import docker

from harness.errors import ImageUnavailable
from harness.host.cleanup import OWNER_LABEL, owner
from harness.images import wheelstore
from harness.images.pypi import _build, _exists
from harness.images.wheels import log

REPO = "oh-matrix/workspace-caller"
PACKAGE = "openhands-workspace"
CLI = "/usr/local/libexec/oh-matrix/docker"  # the real CLI; /usr/local/bin/docker passes through to it
CLAMP = "OH_MATRIX_NOFILE"  # set only where the harness stands in for a daemon that grants the ask
# DockerWorkspace's `docker run` asks `--ulimit nofile=65536:65536`; a daemon whose own hard
# limit is lower (dockerd without CAP_SYS_RESOURCE, an LXC guest) refuses it. With CLAMP set,
# that one ask is lowered to the daemon's own limit, and nothing else of the line changes.
WRAPPER = f"""#!/bin/sh
if [ -n "${{{CLAMP}:-}}" ]; then
  for a in "$@"; do
    shift
    case "$a" in nofile=*) a="nofile=${{{CLAMP}}}:${{{CLAMP}}}" ;; esac
    set -- "$@" "$a"
  done
fi
exec {CLI} "$@"
"""


def _dockerfile(server_ref: str, wheel: str, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"""FROM {server_ref}
USER root
COPY docker {CLI}
COPY docker-clamp /usr/local/bin/docker
COPY {wheel} /tmp/{wheel}
ENV LITELLM_LOCAL_MODEL_COST_MAP=True OPENHANDS_SUPPRESS_BANNER=1
# a pure-Python wheel unpacked into the venv's site-packages, as pip would (no network, no pip)
RUN python -m zipfile -e /tmp/{wheel} "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \\
 && rm /tmp/{wheel} && python -c 'import openhands.workspace'
LABEL {label_lines}
ENTRYPOINT ["sleep"]
CMD ["infinity"]
"""


def caller_image(client: docker.DockerClient, server_ref: str) -> str:
    """The caller's image for the agent-server `server_ref` (with the SDK at its version), built once."""
    server = client.images.get(server_ref)
    version = server.labels.get("org.opencontainers.image.version") or server_ref.rsplit(":", 1)[-1].split("-")[0]
    cli = shutil.which("docker")
    if cli is None:
        raise ImageUnavailable("a docker-workspace caller runs DockerWorkspace, which needs the docker CLI: "
                               "this machine has none to put in the caller's image")
    wheel = wheelstore.index_wheel(PACKAGE, version)
    wheelstore.fetch([wheel])
    digest = hashlib.sha256(Path(cli).read_bytes()).hexdigest()[:12]
    server_id = server.id.split(":")[-1][:12]
    key = hashlib.sha256(f"{server_id}|{wheel.sha256}|{digest}|{WRAPPER}|{_dockerfile('', wheel.name, {})}".encode())
    ref = f"{REPO}:{version}-{key.hexdigest()[:10]}"
    if _exists(client, ref):
        return ref
    log(f"{ref}: building ({PACKAGE} {version} and this machine's docker CLI over {server_ref})")
    labels = {OWNER_LABEL: owner(), "oh-matrix.image": "workspace-caller", "oh-matrix.release": version}
    _build(client, ref, _dockerfile(server_ref, wheel.name, labels),
           {"docker": Path(cli).read_bytes(), "docker-clamp": WRAPPER.encode(), wheel.name: wheel.stored.read_bytes()})
    return ref
