"""The `pypi` backend: build a real OpenHands release from its PyPI wheels into local images.

Images, all FROM one base (see base.py), cached by tag `<release>-<key>` where the key
covers the dependency set, the base and this recipe, so a second call builds nothing:

    oh-matrix/venv:<key>       base + one venv with openhands-ai and its pinned deps,
                               installed with no network from the host-built wheelhouse
    oh-matrix/openhands:<key>  the app, with the env the official app image sets
    oh-matrix/runtime:<key>    the V0 sandbox runtime: same venv + stand-ins for what
                               the wheel does not ship (micromamba, openvscode-server)

Nothing here changes how OpenHands networks: only the images' contents differ from the
official ones, and each difference is written next to the line that makes it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from importlib import resources
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from harness.cleanup import BUILD_LABEL, OWNER_LABEL, owner
from harness.errors import ImageUnavailable
from harness.images import wheels
from harness.images.base import BaseImage, ensure_base
from harness.images.model import ImageSet
from harness.images.wheels import log

RECIPE = "pypi-v0-3"
VENV = "/opt/oh-venv"


def _labels(kind: str, release: str, key: str) -> dict[str, str]:
    return {"oh-matrix.image": kind, "oh-matrix.release": release, "oh-matrix.deps": key,
            "oh-matrix.backend": "pypi"}


def _exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def _context(dockerfile: str, files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(client: docker.DockerClient, ref: str, dockerfile: str,
           files: dict[str, bytes] | None = None) -> None:
    try:
        client.images.build(fileobj=_context(dockerfile, files or {}), custom_context=True,
                            tag=ref, rm=True, forcerm=True, network_mode="none")
    except (BuildError, APIError) as e:
        raise ImageUnavailable(f"building {ref} failed: {str(e)[:300]}") from None


def _install_venv(client: docker.DockerClient, base: BaseImage, house: Path, wheel: Path,
                  ref: str, labels: dict[str, str]) -> None:
    """pip-install the release into a venv inside a container with no network at all,
    from the wheelhouse mounted read-only, then commit that container as an image.
    (A bind mount keeps the 300 MB of wheels out of every layer.)"""
    script = (
        f"set -e; {base.python} -m venv {VENV}; "
        f"{VENV}/bin/pip install --no-index --no-cache-dir --disable-pip-version-check "
        f"--find-links /wheels -c /wheels/constraints.txt /wheels/{wheel.name}; "
        f"find {VENV} -name __pycache__ -prune -exec rm -rf {{}} +"
    )
    t0 = time.monotonic()
    container = client.containers.run(
        base.ref, ["sh", "-c", script], detach=True, network_mode="none",
        volumes={str(house): {"bind": "/wheels", "mode": "ro"}},
        labels={BUILD_LABEL: ref, OWNER_LABEL: owner()},
    )
    try:
        count, tail = 0, []
        for raw in container.logs(stream=True, follow=True):
            for line in raw.decode(errors="replace").splitlines():
                tail = ([*tail, line])[-5:]
                if line.startswith("Processing "):
                    count += 1
                    if count % 100 == 0:
                        log(f"{ref}: {count} packages installed ({time.monotonic() - t0:.0f} s)")
        code = container.wait()["StatusCode"]
        if code != 0:
            raise ImageUnavailable(f"pip install in {base.ref} exited {code}: {' | '.join(tail)}")
        changes = [f"LABEL {k}={v}" for k, v in labels.items()]
        container.commit(repository=ref.split(":")[0], tag=ref.split(":")[1], changes=changes)
        log(f"{ref}: venv with {count} packages in {time.monotonic() - t0:.0f} s")
    finally:
        container.remove(force=True)


def _app_dockerfile(venv_ref: str, version: str, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"""FROM {venv_ref}
# What the official image (containers/app/Dockerfile) sets. Its entrypoint.sh turns
# SANDBOX_USER_ID=0 into RUN_AS_OPENHANDS=false and runs the server as root, and unsets
# WORKSPACE_BASE when no WORKSPACE_MOUNT_PATH is given: both applied here directly.
ENV SANDBOX_LOCAL_RUNTIME_URL=http://host.docker.internal \\
    USE_HOST_NETWORK=false \\
    OPENHANDS_BUILD_VERSION={version} \\
    SANDBOX_USER_ID=0 \\
    RUN_AS_OPENHANDS=false \\
    FILE_STORE=local \\
    FILE_STORE_PATH=/.openhands \\
    INIT_GIT_IN_EMPTY_WORKSPACE=1 \\
    VIRTUAL_ENV={VENV} \\
    PATH={VENV}/bin:$PATH
# Additions, because the PyPI wheel is not the image:
# - no web frontend is shipped, and the server fails at import looking for ./frontend/build;
# - the runtime image has no Playwright Chromium, so the browser is off.
ENV SERVE_FRONTEND=false \\
    ENABLE_BROWSER=false
RUN mkdir -p /.openhands /app
WORKDIR /app
EXPOSE 3000
LABEL {label_lines}
CMD ["uvicorn", "openhands.server.listen:app", "--host", "0.0.0.0", "--port", "3000"]
"""


def _runtime_dockerfile(venv_ref: str, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"""FROM {venv_ref}
# Stand-ins for the official runtime image's micromamba env and openvscode-server
# (see each file's header for why); same venv as the app, on PATH.
COPY micromamba /openhands/micromamba/bin/micromamba
COPY openvscode-server /openhands/.openvscode-server/bin/openvscode-server
RUN mkdir -p /openhands/code /workspace
ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH
LABEL {label_lines}
"""


def _placeholder_dockerfile(base_ref: str, name: str) -> str:
    return f"""FROM {base_ref}
# The 0.6x app server asks its V1 service for this agent-server image on some V0 routes
# and tries to pull it when absent (HTTP 500 with no registry). The V0 flow never runs
# it; this local placeholder only stops the pull, and says so if it is ever started.
LABEL oh-matrix.image=placeholder oh-matrix.placeholder-for="{name}"
CMD ["sh", "-c", "echo 'oh-matrix placeholder for {name}: not a real agent-server' >&2; exit 64"]
"""


def _verify_app(client: docker.DockerClient, app_ref: str, version: str) -> None:
    """Import the app's server module in the built image, with no network.

    A release whose PyPI wheel does not import with its own locked dependencies cannot be
    reproduced from PyPI (0.61.0 is one: its code matches no published openhands-sdk), and
    running it would report an OpenHands crash that the official image does not have. The
    outcome is remembered per image id, so a warm run does not pay for the check again.
    """
    image_id = client.images.get(app_ref).id.split(":")[-1][:16]
    marks = wheels.cache_root() / "verified"
    marks.mkdir(exist_ok=True)
    ok, bad = marks / f"{image_id}.ok", marks / f"{image_id}.fail"
    if ok.exists():
        return
    if not bad.exists():
        log(f"{app_ref}: checking that the server imports")
        container = client.containers.run(
            app_ref, ["python", "-c", "import openhands.server.listen"], network_mode="none",
            detach=True, labels={BUILD_LABEL: app_ref, OWNER_LABEL: owner()},
        )
        try:
            code = container.wait(timeout=300)["StatusCode"]
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        if code == 0:
            ok.write_text("imports\n")
            return
        errors = [ln for ln in logs.splitlines() if "Error" in ln and not ln.startswith(" ")]
        bad.write_text((errors[-1] if errors else logs.strip().splitlines()[-1])[:400] + "\n")
    raise ImageUnavailable(
        f"openhands-ai {version} from PyPI does not start with its locked dependencies "
        f"({bad.read_text().strip()}); the official image is built from the tag's own lock",
        resolved_version=version,
    )


def _agent_server_image(wheel: Path) -> str | None:
    import re
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.read("openhands/app_server/sandbox/sandbox_spec_service.py").decode()
        except KeyError:
            return None
    m = re.search(r"^AGENT_SERVER_IMAGE\s*=\s*['\"]([^'\"]+)['\"]", src, re.M)
    return m.group(1) if m else None


def build_v0(client: docker.DockerClient, tag: str, constraints_file: Path | None = None,
             python312: str | None = None) -> ImageSet:
    python = wheels.find_python312(python312)
    release = wheels.resolve_release(tag, python)
    if constraints_file:
        constraints = wheels.read_constraints(constraints_file)
    else:
        constraints = wheels.lock_constraints(release.wheel)
    deps = wheels.deps_hash(release, constraints)
    base = ensure_base(client, python)
    key = hashlib.sha256(f"{RECIPE}|{deps}|{base.ref}".encode()).hexdigest()[:10]
    name = f"{release.version}-{key}"
    app_ref, runtime_ref = f"oh-matrix/openhands:{name}", f"oh-matrix/runtime:{name}"
    venv_ref = f"oh-matrix/venv:{name}"
    placeholder = _agent_server_image(release.wheel)
    notes = [f"built from openhands-ai {release.version} wheels, deps {deps}"]
    if all(_exists(client, r) for r in (app_ref, runtime_ref)) and (
        placeholder is None or _exists(client, placeholder)
    ):
        _verify_app(client, app_ref, release.version)
        return ImageSet(tag, release.version, "pypi", "v0", app_ref, runtime_ref, deps,
                        [*notes, "cached"])
    t0 = time.monotonic()
    if not _exists(client, venv_ref):
        house = wheels.wheelhouse(release, constraints, python, deps)
        _install_venv(client, base, house, release.wheel, venv_ref,
                      _labels("venv", release.version, deps))
    log(f"{app_ref}: building")
    _build(client, app_ref, _app_dockerfile(venv_ref, release.version,
                                            _labels("app", release.version, deps)))
    assets = resources.files("harness.images") / "assets"
    files = {n: (assets / n).read_bytes() for n in ("micromamba", "openvscode-server")}
    log(f"{runtime_ref}: building")
    _build(client, runtime_ref,
           _runtime_dockerfile(venv_ref, _labels("runtime", release.version, deps)), files)
    if placeholder and not _exists(client, placeholder):
        _build(client, placeholder, _placeholder_dockerfile(base.ref, placeholder))
    _verify_app(client, app_ref, release.version)
    log(f"{release.version}: images ready in {time.monotonic() - t0:.0f} s")
    return ImageSet(tag, release.version, "pypi", "v0", app_ref, runtime_ref, deps, notes)
