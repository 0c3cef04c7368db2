"""The OpenHands CLI (`openhands` on PyPI) as an image, for the `cli` entry point.

The CLI is a package of its own, which runs the agent in its own process (the SDK's
LocalConversation: no sandbox, no runtime to reach). Which CLI release goes with an
openhands-ai release is data (cli_pairs.toml, with PyPI's upload times as evidence). Its
wheel ships no lock, so its dependencies are the ones the installer (uv, or pip with
OH_MATRIX_INSTALLER=pip) resolves from the index on the first build, kept in the wheelhouse
and named in the image's label `oh-matrix.resolved`:

    oh-matrix/cli-venv:<version>-<key>   base + one venv with the CLI, installed offline
    oh-matrix/cli:<version>-<key>        its settings, and `sleep` as its command: the cell
                                         runs the CLI inside it, so the task's effect is
                                         read from a live container
"""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker

from harness import releases
from harness.errors import ImageUnavailable
from harness.images import wheels
from harness.images.base import ensure_base
from harness.images.pypi import VENV, _build, _exists, _install_venv, venv_recipe
from harness.paths import cache_root

PACKAGE = "openhands"
RECIPE = "cli-1"
@dataclass(frozen=True)
class Pair:
    cli: str
    why: str


def paired(app_version: str, listed: list[str] | None = None) -> Pair:
    """The CLI release that goes with an openhands-ai release (cli_pairs.toml); one newer
    than the table pairs with the newest CLI on the index."""
    table = tomllib.loads(resources.files("harness.images").joinpath("cli_pairs.toml").read_text())
    if (row := table.get(app_version)) is not None:
        return Pair(str(row["cli"]), f"openhands {row['cli']}: the newest CLI on PyPI when openhands-ai "
                                     f"{app_version} was published ({row['cli_uploaded'][:10]} before "
                                     f"{row['app_uploaded'][:10]}; harness/images/cli_pairs.toml)")
    newest = (listed or cli_versions())[-1]
    return Pair(newest, f"openhands {newest}: the newest CLI on the index (openhands-ai {app_version} is newer "
                        "than harness/images/cli_pairs.toml)")


def cli_versions() -> list[str]:
    """The CLI's final releases with a wheel, oldest first, as pip lists them."""
    listed = releases.ask_index(releases.find_python312(), PACKAGE)
    if isinstance(listed, str):
        raise ImageUnavailable(f"the index lists no {PACKAGE} (CLI) release: {listed}")
    return listed


def _wheel_dir() -> Path:
    path = cache_root() / "cli-wheels"
    path.mkdir(exist_ok=True)
    return path


@dataclass(frozen=True)
class CliImage:
    ref: str
    version: str
    notes: tuple[str, ...]


def _wheel(version: str, python: Path) -> Path:
    dest = _wheel_dir()
    found = sorted(dest.glob(f"openhands-{version}-*.whl"))
    if found:
        return found[-1]
    proc = subprocess.run([str(python), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--disable-pip-version-check", "-d", str(dest), f"{PACKAGE}=={version}"],
                          capture_output=True, text=True, timeout=300)
    found = sorted(dest.glob(f"openhands-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ImageUnavailable(f"the CLI {PACKAGE}=={version}: cannot fetch its wheel: {tail[0][:200]}")
    return found[-1]


def prepare_cli(client: docker.DockerClient, version: str) -> CliImage:
    """The CLI release's image, built once from PyPI wheels and cached by its inputs."""
    python = releases.find_python312()
    wheel = _wheel(version, python)
    release = wheels.Release(f"cli-{version}", version, wheel)
    deps = wheels.deps_hash(release, [], [PACKAGE])  # no lock: the wheel alone names the inputs
    base = ensure_base(client, python)
    key = hashlib.sha256(f"{venv_recipe()}|{RECIPE}|{deps}|{base.ref}".encode()).hexdigest()[:10]
    venv_ref, ref = f"oh-matrix/cli-venv:{version}-{key}", f"oh-matrix/cli:{version}-{key}"
    labels = {"oh-matrix.image": "cli", "oh-matrix.release": f"cli-{version}", "oh-matrix.deps": deps,
              "oh-matrix.backend": "pypi"}
    if not _exists(client, ref):
        if not _exists(client, venv_ref):
            house = wheels.wheelhouse(release, [], python, deps)
            _install_venv(client, base, house, [f"/wheels/{wheel.name}"], venv_ref,
                          {**labels, "oh-matrix.image": "venv"})
        frozen = client.containers.run(venv_ref, [f"{VENV}/bin/pip", "freeze", "--disable-pip-version-check"],
                                       network_mode="none", remove=True).decode().split()
        resolved = " ".join(p for p in frozen if p.lower().startswith(("openhands", "litellm")))
        _build(client, ref, _dockerfile(venv_ref, {**labels, "oh-matrix.resolved": resolved}))
    resolved = client.images.get(ref).labels.get("oh-matrix.resolved", "")
    return CliImage(ref, version, (f"the CLI openhands {version} from its PyPI wheel; its wheel ships no lock, so its "
                                   f"dependencies are the index's resolution at the first build: {resolved}",))


def _dockerfile(venv_ref: str, labels: dict[str, str]) -> str:
    label_lines = " ".join(f'{k}="{v}"' for k, v in labels.items())
    # LITELLM_LOCAL_MODEL_COST_MAP: litellm reads its bundled cost map instead of fetching it.
    return f"""FROM {venv_ref}
ENV PATH={VENV}/bin:$PATH \\
    LITELLM_LOCAL_MODEL_COST_MAP=True \\
    OPENHANDS_SUPPRESS_BANNER=1
LABEL {label_lines}
CMD ["sleep", "infinity"]
"""
