"""The `pypi` backend: build a real OpenHands release from its PyPI wheels into local images.

Images, all FROM one base (see base.py), cached by tag `<release>-<key>` where the key
covers the dependency set, the base and this recipe, so a second call builds nothing:

    oh-matrix/venv:<key>       base + one venv with openhands-ai and its pinned deps,
                               installed with no network from the host-built wheelhouse
    oh-matrix/openhands:<key>  the app, with the env the official app image sets
    oh-matrix/runtime:<key>    the V0 sandbox runtime: same venv + stand-ins for what
                               the wheel does not ship (micromamba, openvscode-server)

A release listed in true_sources.toml also gets the packages it really ran with, built from
their git commit and installed over the locked set (see sources.py); the images say so in
the label `oh-matrix.sources`.

Nothing here changes how OpenHands networks: only the images' contents differ from the
official ones, and each difference is written next to the line that makes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound
from docker.types import Mount

from harness import knobs
from harness.errors import ImageUnavailable
from harness.generations import Generation
from harness.host.cleanup import BUILD_LABEL, OWNER_LABEL, owner, remove_container
from harness.images import failures, sources, wheels, wheelstore
from harness.images.base import BaseImage, ensure_base
from harness.images.failures import BuildFailed
from harness.images.official import AGENT_SERVER_REPO
from harness.images.wheels import log
from harness.model import ImageSet
from harness.modes import app_command
from harness.paths import cache_root

# Bump VENV_RECIPE when the venv install changes (slow rebuild), IMAGE_RECIPE when only the
# thin images over it change (seconds).
VENV_RECIPE = "pypi-venv-5"  # 5: no VOLUME /wheels in the committed venv


def venv_recipe() -> str:
    """The recipe in the venv's key: pip's keeps the name it always had (its images stay
    valid), another installer's is apart, so the two are never taken for each other."""
    installer = knobs.choice("OH_MATRIX_INSTALLER")
    return VENV_RECIPE if installer == "pip" else f"{VENV_RECIPE}-{installer}"
IMAGE_RECIPE = "images-2"
VENV = "/opt/oh-venv"
# The venv install is the CPU-heavy step (pip unpacks and byte-compiles ~340 wheels, one
# core each): when releases build in parallel (images.prepare_all), at most one per core
# runs at a time; downloads and image builds of the others go on meanwhile.
# OH_MATRIX_INSTALL_SLOTS overrides the count (to measure the difference).
# Made on first use, not at import: a bad value is the inputs step's one line (harness.knobs).
_install_slots: threading.BoundedSemaphore | None = None
_install_slots_made = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    global _install_slots
    with _install_slots_made:
        if _install_slots is None:
            count = knobs.whole_number("OH_MATRIX_INSTALL_SLOTS") or os.cpu_count() or 1
            _install_slots = threading.BoundedSemaphore(count)
        return _install_slots


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
    """`docker build` of one image, its output streamed into the build's progress lines."""
    try:
        for chunk in client.api.build(fileobj=_context(dockerfile, files or {}), custom_context=True, tag=ref,
                                      rm=True, forcerm=True, network_mode="none", decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                raise BuildError(chunk.get("error") or chunk["errorDetail"].get("message", ""), [])
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log(f"{ref}: {line.strip()}")
    except (BuildError, APIError) as e:
        raise ImageUnavailable(f"building {ref} failed: {str(e)[:300]}") from None


def _install_venv(client: docker.DockerClient, base: BaseImage, house: Path, packages: list[str],
                  ref: str, labels: dict[str, str], overrides: list[str] | None = None) -> None:
    """Install the release into a venv inside a container with no network at all, from the
    wheelhouse mounted read-only, then commit that container as an image. (A bind mount
    keeps the 300 MB of wheels out of every layer.)

    `overrides` (wheelhouse-relative wheel files: the true sources) are installed after,
    over the locked set, with no dependencies: the release's exact pins (==1.0.0a6 for
    0.61.0) would otherwise make the installer refuse them; a reinstall keeps that true when
    a git build carries the same version string as the PyPI release it replaces.

    The venv is made by the base's own `python -m venv` either way (so it has the pip that
    Python ships, as before); uv, when it installs, is a static binary in the wheelhouse,
    never part of the image."""
    installer = knobs.choice("OH_MATRIX_INSTALLER")
    script = f"set -e; {base.python} -m venv {VENV}; " + _install_script(installer, packages, overrides)
    # The bytecode both compile stays: without it every container start recompiles the
    # whole venv, and the V1 sandbox then misses the app's 15 s health grace.
    slots = _slots()
    if not slots.acquire(blocking=False):
        log(f"{ref}: waiting for a free core (another release's venv is installing)")
        slots.acquire()
    try:
        _run_install(client, base, house, script, ref, labels, installer)
    finally:
        slots.release()


# Where the build container sees uv: in the wheelhouse it installs from (wheelstore.add_uv),
# so nothing of it, not even a mount point, is left in the committed venv.
UV = f"/wheels/{wheelstore.UV_IN_HOUSE}"


# Each installer's command, and how it puts a wheel over an installed one of the same version.
# uv's --no-cache: it unpacks into a temporary folder it removes, so nothing of it is committed.
INSTALL = {
    "uv": (f"{UV} pip install --python {VENV}/bin/python --offline --no-index --no-cache --compile-bytecode",
           "--reinstall"),
    "pip": (f"{VENV}/bin/pip install --no-index --no-cache-dir --disable-pip-version-check", "--force-reinstall"),
}


def _install_script(installer: str, packages: list[str], overrides: list[str] | None) -> str:
    install, reinstall = INSTALL[installer]
    script = f"{install} --find-links /wheels -c /wheels/constraints.txt {' '.join(packages)}"
    if overrides:
        script += f"; {install} --no-deps {reinstall} {' '.join('/wheels/' + w for w in overrides)}"
    return script


def _run_install(client: docker.DockerClient, base: BaseImage, house: Path, script: str, ref: str,
                 labels: dict[str, str], installer: str) -> None:
    t0 = time.monotonic()
    # A Mount, not `volumes=`: docker-py's `volumes` also writes Config.Volumes, which the
    # commit below kept, so every app and runtime container made an anonymous /wheels volume
    # that outlived it wherever OpenHands removed its runtimes without their volumes.
    mounts = [Mount("/wheels", str(house), type="bind", read_only=True)]
    if installer == "uv":
        wheelstore.add_uv(house)
    container = client.containers.run(
        base.ref, ["sh", "-c", script], detach=True, network_mode="none", mounts=mounts,
        labels={BUILD_LABEL: ref, OWNER_LABEL: owner()},
    )
    try:
        count, tail = 0, list[str]()
        for raw in container.logs(stream=True, follow=True):
            for line in raw.decode(errors="replace").splitlines():
                tail = ([*tail, line])[-5:]
                if line.startswith("Processing "):  # pip, one line a package
                    count += 1
                    if count % 100 == 0:
                        log(f"{ref}: {count} packages installed ({time.monotonic() - t0:.0f} s)")
                elif m := re.match(r"Installed (\d+) packages? in", line):  # uv, once at the end
                    count += int(m.group(1))
        code = container.wait()["StatusCode"]
        if code != 0:
            message = f"{ref}: {installer} install in {base.ref} exited {code}: {' | '.join(tail)}"
            if failures.transient(message):
                raise ImageUnavailable(message)
            raise BuildFailed(message)
        changes = [f"LABEL {k}={v}" for k, v in labels.items()]
        container.commit(repository=ref.split(":")[0], tag=ref.split(":")[1], changes=changes)
        log(f"{ref}: venv with {count} packages by {installer} in {time.monotonic() - t0:.0f} s")
    finally:
        remove_container(container)


def _app_dockerfile(venv_ref: str, version: str, labels: dict[str, str], gen: Generation) -> str:
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
# - the runtime image has no Playwright Chromium, so the browser is off (V0);
# - V1 keeps its data where the official image mounts ~/.openhands, and reads litellm's
#   bundled cost map instead of fetching it (no network).
ENV SERVE_FRONTEND=false \\
    ENABLE_BROWSER=false \\
    OH_PERSISTENCE_DIR=/.openhands \\
    LITELLM_LOCAL_MODEL_COST_MAP=True
RUN mkdir -p /.openhands /app
WORKDIR /app
EXPOSE 3000
LABEL {label_lines}
CMD {json.dumps(app_command(gen, 3000))}
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


def _verify_app(client: docker.DockerClient, app_ref: str, version: str, module: str,
                built_from: str = "") -> None:
    """Import the app's server module in the built image, with no network.

    A release whose wheel does not import with the dependencies it is built with cannot be
    reproduced that way, and running it would report an OpenHands crash that the official
    image does not have. (0.61.0 was one with its PyPI pins alone: its lock pins
    openhands-sdk/-agent-server 1.0.0a6, which its code predates; it imports with the
    commit its tag locked, from true_sources.toml.) The outcome is remembered per image id,
    so a warm run does not pay for the check again; a failure is a BuildFailed, which the
    caller also remembers for the release's dependency hash.
    """
    image_id = client.images.get(app_ref).id.split(":")[-1][:16]
    marks = cache_root() / "verified"
    marks.mkdir(exist_ok=True)
    ok, bad = marks / f"{image_id}.ok", marks / f"{image_id}.fail"
    if ok.exists():
        return
    if not bad.exists():
        log(f"{app_ref}: checking that the server imports")
        container = client.containers.run(
            app_ref, ["python", "-c", f"import {module}"], network_mode="none",
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
    raise BuildFailed(
        f"openhands-ai {version} built from PyPI{built_from} does not start with its locked "
        f"dependencies ({bad.read_text().strip()}); the official image is built from the tag's own lock: "
        f"use --backend official where its registry is reachable",
        resolved_version=version,
    )


def _agent_server_image(wheel: Path) -> str | None:
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.read("openhands/app_server/sandbox/sandbox_spec_service.py").decode()
        except KeyError:
            return None
    m = re.search(r"^AGENT_SERVER_IMAGE\s*=\s*['\"]([^'\"]+)['\"]", src, re.M)
    return m.group(1) if m else None


@dataclass(frozen=True)
class _Plan:
    """One release's build inputs and the names its images get."""

    python: Path
    release: wheels.Release
    constraints: list[str]
    deps: str
    base: BaseImage
    key: str  # the venv: deps + base + install recipe
    archives: tuple[sources.Archive, ...] = ()  # the release's true sources, if it has any
    built: list[str] = field(default_factory=list)  # what this call had to build
    steps: dict[str, float] = field(default_factory=dict)  # seconds of each step this call ran

    @property
    def venv_name(self) -> str:
        return f"{self.release.version}-{self.key}"

    @property
    def name(self) -> str:
        return f"{self.release.version}-{hashlib.sha256(f'{IMAGE_RECIPE}|{self.key}'.encode()).hexdigest()[:10]}"

    def labels(self, kind: str) -> dict[str, str]:
        return _labels(kind, self.release.version, self.deps)

    def house(self) -> Path:
        def build_sources(folder: Path, builder: Path) -> None:
            t0 = time.monotonic()
            for archive in self.archives:
                sources.build_wheels(archive, builder, folder / "sources")
            self.steps["sources"] = time.monotonic() - t0

        t0 = time.monotonic()
        house = wheels.wheelhouse(self.release, self.constraints, self.python, self.deps,
                                  build_sources if self.archives else None)
        self.steps["collect"] = time.monotonic() - t0 - self.steps.get("sources", 0.0)
        return house

    def overrides(self, house: Path) -> list[str]:
        """The true sources' wheels, relative to the wheelhouse."""
        return sorted(str(p.relative_to(house)) for p in (house / "sources").glob("*.whl"))


def _plan(client: docker.DockerClient, tag: str, constraints_file: Path | None,
          python312: str | None) -> _Plan:
    python = wheels.find_python312(python312)
    release = wheels.resolve_release(tag, python)
    constraints = (wheels.read_constraints(constraints_file) if constraints_file
                   else wheels.lock_constraints(release.wheel))
    true = sources.for_release(release.version)
    archives = (sources.obtain(true),) if true else ()
    deps = wheels.deps_hash(release, constraints, [a.hash_part() for a in archives])
    base = ensure_base(client, python)
    key = hashlib.sha256(f"{venv_recipe()}|{deps}|{base.ref}".encode()).hexdigest()[:10]
    return _Plan(python, release, constraints, deps, base, key, archives)


def _app_images(client: docker.DockerClient, plan: _Plan, gen: Generation) -> tuple[str, str]:
    """The venv with openhands-ai and the app image over it (both cached)."""
    venv_ref, app_ref = f"oh-matrix/venv:{plan.venv_name}", f"oh-matrix/openhands:{plan.name}"
    if not _exists(client, app_ref):
        if not _exists(client, venv_ref):
            house = plan.house()
            overrides = plan.overrides(house)
            labels = plan.labels("venv")
            if plan.archives:
                # Every image over the venv inherits this label: it says what really ran.
                built = [p for p in (house / "sources").glob("*.whl")]
                labels[sources.LABEL] = sources.label_value(
                    [e for a in plan.archives for e in sources.entries(built, a.source)])
            t0 = time.monotonic()
            _install_venv(client, plan.base, house, [f"/wheels/{plan.release.wheel.name}"],
                          venv_ref, labels, overrides)
            plan.steps["venv"] = time.monotonic() - t0
            plan.built.append("venv")
        log(f"{app_ref}: building")
        _build(client, app_ref, _app_dockerfile(venv_ref, plan.release.version, plan.labels("app"), gen))
        plan.built.append("app")
    return venv_ref, app_ref


def _sources_of(client: docker.DockerClient, app_ref: str) -> list[dict[str, str]]:
    """What ImageSet.sources says: read back from the image, as `images list` shows it."""
    return sources.parse_label(client.images.get(app_ref).labels.get(sources.LABEL))


STEPS = ("collect", "sources", "venv", "images")  # a cold build's steps, as ImageSet.build_seconds names them


def _remembered(plan: _Plan, build: Callable[[], ImageSet]) -> ImageSet:
    """Run `build` unless the same inputs failed before; remember it if they fail now."""
    failures.check(plan.name, plan.release.version)
    t0 = time.monotonic()
    try:
        images = build()
    except BuildFailed as e:
        mark = failures.record(plan.name, str(e))
        log(f"{plan.release.version}: failed; remembered in {mark}")
        raise
    version = plan.release.version
    if not plan.built:
        log(f"{version}: nothing rebuilt, all images cached (deps {plan.deps})")
        return images
    total = time.monotonic() - t0
    plan.steps["images"] = total - sum(plan.steps.values())  # the images over the venv, and their checks
    steps = {name: round(plan.steps[name], 1) for name in STEPS if name in plan.steps}
    log(f"{version}: built {', '.join(plan.built)} in {total:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in steps.items()) + ")")
    return images.model_copy(update={"build_seconds": steps})


# What these images lack that a task may need (ImageSet.lacks; a note says why).
LACKS = {"browser": ("no Playwright Chromium in the wheels: the V0 app runs with ENABLE_BROWSER=false, "
                     "the V1 sandbox has a placeholder chromium")}


def _notes(plan: _Plan, items: list[dict[str, str]]) -> list[str]:
    notes = [f"built from openhands-ai {plan.release.version} wheels, deps {plan.deps}"]
    notes += [f"lacks {name}: {why}" for name, why in LACKS.items()]
    for archive in plan.archives:
        mine = [e for e in items if e["commit"] == archive.source.commit]
        notes.append(sources.note(mine, archive.source))
    return notes


def _built_from(items: list[dict[str, str]]) -> str:
    return f" with {sources.summary(items)} from git" if items else ""


def _asset(name: str) -> bytes:
    return (resources.files("harness.images") / "assets" / name).read_bytes()


def build_v0(client: docker.DockerClient, tag: str, gen: Generation, constraints_file: Path | None = None,
             python312: str | None = None) -> ImageSet:
    plan = _plan(client, tag, constraints_file, python312)
    return _remembered(plan, lambda: _build_v0(client, tag, plan, gen))


def _build_v0(client: docker.DockerClient, tag: str, plan: _Plan, gen: Generation) -> ImageSet:
    version = plan.release.version
    venv_ref, app_ref = _app_images(client, plan, gen)
    runtime_ref = f"oh-matrix/runtime:{plan.name}"
    if not _exists(client, runtime_ref):
        log(f"{runtime_ref}: building")
        files = {n: _asset(n) for n in ("micromamba", "openvscode-server")}
        _build(client, runtime_ref, _runtime_dockerfile(venv_ref, plan.labels("runtime")), files)
        plan.built.append("runtime")
    placeholder = _agent_server_image(plan.release.wheel)
    if placeholder and not _exists(client, placeholder):
        _build(client, placeholder, _placeholder_dockerfile(plan.base.ref, placeholder))
        plan.built.append("agent-server placeholder")
    items = _sources_of(client, app_ref)
    _verify_app(client, app_ref, version, gen.app_module.partition(":")[0], _built_from(items))
    return ImageSet(tag=tag, resolved_version=version, backend="pypi", api=gen.name, app_image=app_ref,
                    runtime_image=runtime_ref, deps_hash=plan.deps, notes=_notes(plan, items), sources=items,
                    lacks=list(LACKS))


# -- V1: app server + agent-server sandbox -------------------------------------------------


def _pin(constraints: list[str], package: str) -> str:
    for line in constraints:
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise ImageUnavailable(f"the lock pins no {package}; cannot build the V1 sandbox image")


def _agent_server_dockerfile(venv_ref: str, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"""FROM {venv_ref}
# As the official agent-server image (which holds only openhands-agent-server and
# openhands-tools; this venv also has openhands-ai, which the sandbox never imports):
# user openhands (uid 10001) with passwordless sudo,
# working dir /workspace/project owned by it, entrypoint the agent server (the app passes
# --port 8000 as the command).
RUN useradd -u 10001 -m -s /bin/bash openhands \\
 && echo 'openhands ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/openhands \\
 && mkdir -p /workspace/project && chown -R openhands:openhands /workspace
# Stand-in: see the file's header.
COPY chromium /usr/bin/chromium
# litellm reads its bundled cost map instead of fetching it from GitHub at import, as the app
# image does: this machine has no network, and the fetch's retries held every agent-server's
# start by about 7 s (measured at 1.49.1: 2.4 s, then 4.5 s, then the bundled map).
ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH LITELLM_LOCAL_MODEL_COST_MAP=True
USER openhands
WORKDIR /workspace/project
LABEL {label_lines}
ENTRYPOINT ["python", "-m", "openhands.agent_server"]
CMD ["--port", "8000"]
"""


def build_v1(client: docker.DockerClient, tag: str, gen: Generation, constraints_file: Path | None = None,
             python312: str | None = None) -> ImageSet:
    """The 1.x app server and the agent-server image it starts, from one pinned wheel set.

    The sandbox image is named exactly as the app asks for it by default
    (`{AGENT_SERVER_REPO}:{agent-server version}-python`, sandbox_spec_service.py), and
    carries that one tag only: the app looks its spec up by `image.tags[0]`.
    """
    plan = _plan(client, tag, constraints_file, python312)
    return _remembered(plan, lambda: _build_v1(client, tag, plan, gen))


def _build_v1(client: docker.DockerClient, tag: str, plan: _Plan, gen: Generation) -> ImageSet:
    version = plan.release.version
    gen = gen.at(version)  # the app this release serves (generations.V1.before)
    venv_ref, app_ref = _app_images(client, plan, gen)
    items = _sources_of(client, app_ref)
    # The app names its sandbox after the agent-server it has installed: the true
    # sources' build when there is one, else the lock's pin.
    agent_version = next((e["version"] for e in items if e["package"] == "openhands-agent-server"), None) \
        or _pin(plan.constraints, "openhands-agent-server")
    # A release that hard-codes its image (AGENT_SERVER_IMAGE, 1.0-1.8: before 1.5 a commit
    # tag, not a version) asks for that name; the newer ones for the installed version's.
    sandbox_ref = _agent_server_image(plan.release.wheel) or f"{AGENT_SERVER_REPO}:{agent_version}-python"
    # Its name is fixed by the app, so the cache key lives in a label instead.
    key = f"{plan.name}|{hashlib.sha256(_agent_server_dockerfile(venv_ref, {}).encode()).hexdigest()[:10]}"
    current = client.images.get(sandbox_ref).labels.get("oh-matrix.key") if _exists(client, sandbox_ref) else None
    if current != key:
        # The app's venv already holds openhands-agent-server and openhands-tools at the
        # lock's versions (openhands-ai depends on them): the sandbox reuses it, as the V0
        # runtime does, instead of a second 1.3 GB install.
        log(f"{sandbox_ref}: building")
        labels = {**plan.labels("agent-server"), "oh-matrix.key": key}
        _build(client, sandbox_ref, _agent_server_dockerfile(venv_ref, labels),
               {"chromium": _asset("chromium")})
        plan.built.append("agent-server")
    _verify_app(client, app_ref, version, gen.app_module.partition(":")[0], _built_from(items))
    return ImageSet(tag=tag, resolved_version=version, backend="pypi", api=gen.name, app_image=app_ref,
                    runtime_image=sandbox_ref, deps_hash=plan.deps,
                    notes=[*_notes(plan, items), f"agent-server {agent_version}"], sources=items,
                    lacks=list(LACKS))
