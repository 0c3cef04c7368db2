"""Images built here declare no volume: a container made from an image with `VOLUME` gets an
anonymous volume, which stays behind whenever whoever removes the container (OpenHands,
for the runtimes it starts) does not ask for its volumes too."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker

from harness.images import pypi
from harness.images.base import BaseImage


def test_the_venv_install_commits_an_image_with_no_volume(client: docker.DockerClient, base_image: BaseImage,
                                                          tmp_path: Path) -> None:
    ref = f"oh-matrix-test/venv:{uuid.uuid4().hex[:12]}"
    (tmp_path / "constraints.txt").write_text("")
    # its own kind: committed from the base, it would otherwise carry the base's label, and
    # `images save` (run by another worker at the same time) would take it for a base
    pypi._run_install(client, base_image, tmp_path, f"test -f /wheels/constraints.txt && {pypi.UV} --version", ref,
                      {"oh-matrix.test": "1", "oh-matrix.image": "test"}, "uv")
    try:
        image = client.images.get(ref)
        assert not image.attrs["Config"].get("Volumes"), image.attrs["Config"]["Volumes"]
        # uv ran in the build (the install above exits non-zero otherwise) and left nothing behind
        left = client.containers.run(ref, ["sh", "-c", "ls -A /wheels /opt 2>&1"], network_mode="none", remove=True)
        assert left.decode().split() == ["/opt:", "/wheels:"], left  # both empty: a mount point, no uv
        # what OpenHands does with a runtime: start it, then remove it without its volumes
        c = client.containers.run(ref, ["true"], detach=True, network_mode="none")
        c.wait()
        c.reload()
        made = [m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"]
        c.remove(force=True)
        assert made == [], f"the container made volumes {made}"
    finally:
        client.images.remove(ref, force=True)
