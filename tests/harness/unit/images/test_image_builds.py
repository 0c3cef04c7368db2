"""How the pypi backend builds, without Docker: failures remembered per dependency hash, the
venv install that puts true sources over the lock, several releases at once, and what
`oh-matrix images list/build` print."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.errors import ImageUnavailable, InputError
from harness.images import failures, pypi, wheels
from harness.images.base import BaseImage
from harness.images.failures import BuildFailed
from harness.model import ImageSet

SHA = "be9725b459c0afabc18cfba89acf11dc756b42f0"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("OH_MATRIX_CACHE", str(root))
    return root


def plan(tmp_path: Path, deps: str = "deps0123abcd") -> pypi._Plan:
    wheel = tmp_path / "openhands_ai-9.9.9-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    return pypi._Plan(Path("/usr/bin/python3.12"), wheels.Release("9.9", "9.9.9", wheel), ["a==1"], deps,
                      BaseImage("oh-matrix/base:x", "/usr/bin/python3.12"), f"k{deps[:9]}")


def image_set(tag: str = "9.9") -> ImageSet:
    return ImageSet(tag=tag, resolved_version="9.9.9", backend="pypi", api="v0", app_image="oh-matrix/openhands:x",
                    runtime_image="oh-matrix/runtime:x", deps_hash="deps")


# -- failures remembered -------------------------------------------------------------------------

def test_a_build_failure_is_remembered_for_its_dependency_hash(tmp_path: Path, cache: Path) -> None:
    calls = []

    def fails() -> ImageSet:
        calls.append(1)
        raise BuildFailed("openhands-ai 9.9.9 built from PyPI does not start (ImportError: x)", "9.9.9")

    p = plan(tmp_path)
    with pytest.raises(BuildFailed):
        pypi._remembered(p, fails)
    mark = cache / "failed" / p.name
    assert mark.is_file() and p.name.startswith("9.9.9-")
    with pytest.raises(ImageUnavailable) as e:
        pypi._remembered(p, fails)
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith("not rebuilt: openhands-ai 9.9.9 built from PyPI does not start (ImportError: x)")
    assert f"to retry: rm {mark} or oh-matrix images prune --failures" in text
    assert e.value.resolved_version == "9.9.9"
    assert calls == [1]  # the known failure did not build again
    # other inputs (a new dependency hash) are tried
    with pytest.raises(BuildFailed):
        pypi._remembered(plan(tmp_path, "deps9999ffff"), fails)
    assert calls == [1, 1]
    assert failures.forget_all() == 2
    with pytest.raises(BuildFailed):
        pypi._remembered(p, fails)
    assert calls == [1, 1, 1]


def test_a_failure_of_the_moment_is_not_remembered(tmp_path: Path, cache: Path) -> None:
    def flaky() -> ImageSet:
        raise ImageUnavailable("pull: registry did not answer")

    with pytest.raises(ImageUnavailable):
        pypi._remembered(plan(tmp_path), flaky)
    assert not (cache / "failed").exists() or not list((cache / "failed").iterdir())


def test_a_warm_build_says_nothing_was_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plan(tmp_path)
    pypi._remembered(p, image_set)
    assert "9.9.9: nothing rebuilt, all images cached (deps deps0123abcd)" in capsys.readouterr().err
    p.built.extend(["venv", "app"])
    p.steps.update({"collect": 12.0, "venv": 30.0})
    built = pypi._remembered(p, image_set)
    assert "9.9.9: built venv, app in" in capsys.readouterr().err
    assert list(built.build_seconds) == ["collect", "venv", "images"]  # each step the build ran, timed


@pytest.mark.parametrize(("installer", "output", "remembered"), [
    ("pip", "ERROR: No matching distribution found for nosuch==1.0", True),
    ("pip", "error: subprocess-exited-with-error | error: metadata-generation-failed", True),
    ("pip", "WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')", False),
    ("pip", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", False),
    ("uv", "error: No solution found when resolving dependencies: nosuch==1.0", True),
    ("uv", "error: Failed to fetch: `https://pypi.org/simple/x/` | Caused by: Connection refused", False),
])
def test_a_failed_collect_leaves_no_partial_wheelhouse(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                       installer: str, output: str, remembered: bool) -> None:
    from harness.images import wheelstore

    monkeypatch.setenv("OH_MATRIX_INSTALLER", installer)
    fake = tmp_path / "fake"  # pip wheel (the builder's python) or uv pip compile: says it, fails
    fake.write_text(f"#!/bin/sh\necho \"{output}\"\necho \"{output}\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(wheels, "builder_python", lambda python: fake)
    monkeypatch.setattr(wheelstore, "uv_binary", lambda: fake)
    monkeypatch.setattr(wheelstore.Platform, "of", classmethod(lambda cls, py: cls("3.12.1", "x86_64", (2, 36))))
    p = plan(tmp_path)
    with pytest.raises(ImageUnavailable) as e:
        wheels.wheelhouse(p.release, p.constraints, p.python, p.deps)
    assert isinstance(e.value, BuildFailed) is remembered
    said = {"pip": "9.9.9: pip wheel failed:", "uv": "uv pip compile failed:"}[installer]
    assert str(e.value).startswith(said) and "\n" not in str(e.value)
    assert [d.name for d in (cache / "wheelhouse").iterdir()] == []


# -- the venv install --------------------------------------------------------------------------

class FakeContainer:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def logs(self, **kw: Any) -> list[bytes]:
        return [b"Processing /wheels/openhands_ai-0.61.0-cp312-cp312-manylinux_2_35_x86_64.whl\n"]

    def wait(self, **kw: Any) -> dict[str, int]:
        return {"StatusCode": 0}

    def commit(self, **kw: Any) -> None:
        self.client.committed = kw

    def remove(self, **kw: Any) -> None:
        self.client.removed = True


class FakeClient:
    def __init__(self) -> None:
        self.containers = self
        self.committed: dict[str, Any] = {}
        self.removed = False
        self.command: list[str] = []

    def run(self, image: str, command: list[str], **kw: Any) -> FakeContainer:
        self.command = command
        self.mounts = kw["mounts"]
        assert kw["network_mode"] == "none"
        return FakeContainer(self)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_true_sources_go_over_the_locked_set_with_no_deps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          installer: str) -> None:
    from harness.images import wheelstore

    monkeypatch.setenv("OH_MATRIX_INSTALLER", installer)
    (tmp_path / "uv").write_bytes(b"a static binary")
    monkeypatch.setattr(wheelstore, "uv_binary", lambda: tmp_path / "uv")
    client = FakeClient()
    overrides = ["sources/openhands_sdk-1.0.0a5-py3-none-any.whl",
                 "sources/openhands_tools-1.0.0a5-py3-none-any.whl"]
    label = f"OpenHands/software-agent-sdk@{SHA}:openhands-sdk==1.0.0a5,openhands-tools==1.0.0a5"
    pypi._install_venv(client, BaseImage("base", "/py/bin/python3.12"), tmp_path,  # type: ignore[arg-type]
                       ["/wheels/openhands_ai-0.61.0.whl"], "oh-matrix/venv:0.61.0-k",
                       {"oh-matrix.image": "venv", "oh-matrix.sources": label}, overrides)
    script = client.command[-1]
    assert script.startswith("set -e; /py/bin/python3.12 -m venv /opt/oh-venv; ")  # the venv has pip either way
    reinstall = {"pip": "; /opt/oh-venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check "
                        "--no-deps --force-reinstall ",
                 "uv": "; /wheels/.oh-matrix-uv pip install --python /opt/oh-venv/bin/python --offline --no-index "
                       "--no-cache --compile-bytecode --no-deps --reinstall "}[installer]
    locked, _, over = script.partition(reinstall)
    assert "-c /wheels/constraints.txt /wheels/openhands_ai-0.61.0.whl" in locked
    assert over.split() == ["/wheels/" + w for w in overrides]
    mounts = [m["Target"] for m in client.mounts]
    assert mounts == ["/wheels"]  # uv, when it installs, is in the wheelhouse: no mount point is committed
    assert (tmp_path / ".oh-matrix-uv").is_file() is (installer == "uv")
    assert f"LABEL oh-matrix.sources={label}" in client.committed["changes"]
    assert client.removed
    # a release without true sources installs as it always did
    pypi._install_venv(client, BaseImage("base", "/py/bin/python3.12"), tmp_path,  # type: ignore[arg-type]
                       ["/wheels/x.whl"], "oh-matrix/venv:x-k", {})
    assert "--no-deps" not in client.command[-1]


# -- several releases at once ----------------------------------------------------------------------

def test_prepare_all_overlaps_releases_and_names_each_in_its_progress(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    running, peak = [0], [0]
    lock = threading.Lock()

    def fake(client: Any, tag: str, api: str, backend: str, constraints: Any, python312: Any) -> ImageSet:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        wheels.log("working")
        time.sleep(0.4)
        with lock:
            running[0] -= 1
        if tag == "0.61":
            raise BuildFailed("openhands-ai 0.61.0: no", "0.61.0")
        return image_set(tag).model_copy(update={"api": api, "resolved_version": "1.11.0" if api == "v1" else "0.62.0"})

    monkeypatch.setattr(images, "_prepare", fake)
    out = images.prepare_all(None, [("0.61", "v0"), ("0.62", "v0"), ("latest", "v1")], "pypi")  # type: ignore[arg-type]
    assert peak[0] == 3  # all three building at once (no wall clock: a busy machine must not fail it)
    assert list(out) == ["0.61", "0.62", "latest"]
    assert isinstance(out["0.61"], ImageUnavailable) and isinstance(out["latest"], ImageSet)
    err = capsys.readouterr().err
    for tag in ("0.61", "0.62", "latest"):
        assert f"[oh-matrix images {tag}] working" in err
    assert re.search(r"3 release\(s\) in \d+ s; unavailable: 0\.61", err), err
    lines = images.build_lines(out)
    assert lines[0] == "0.61 (0.61.0): image-unavailable: openhands-ai 0.61.0: no"
    assert lines[1].startswith("0.62: 0.62.0 via pypi  app=oh-matrix/openhands:x")


def test_prepare_all_raises_other_errors_after_every_release_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    finished = []

    def fake(client: Any, tag: str, *rest: Any) -> ImageSet:
        if tag == "bad":
            raise InputError("tag 'bad': expected MAJOR.MINOR")
        time.sleep(0.3)
        finished.append(tag)
        return image_set(tag)

    monkeypatch.setattr(images, "_prepare", fake)
    with pytest.raises(InputError, match="tag 'bad'"):
        images.prepare_all(None, [("bad", "v0"), ("0.62", "v0")], "pypi")  # type: ignore[arg-type]
    assert finished == ["0.62"]


# -- what the CLI prints -------------------------------------------------------------------------

class FakeImage:
    def __init__(self, tag: str, labels: dict[str, str]) -> None:
        self.tags, self.labels = [tag], labels
        self.attrs = {"Size": 1.9e9}
        self.short_id = "sha256:0123456789ab"


def test_images_list_shows_which_packages_came_from_which_commit() -> None:
    common = {"oh-matrix.image": "app", "oh-matrix.deps": "d1"}
    label = f"OpenHands/software-agent-sdk@{SHA}:openhands-sdk==1.0.0a5,openhands-tools==1.0.0a5"
    rows = images.image_rows([
        FakeImage("oh-matrix/openhands:0.62.0-x", {**common, "oh-matrix.release": "0.62.0"}),
        FakeImage("oh-matrix/openhands:0.61.0-y", {**common, "oh-matrix.release": "0.61.0",
                                                    "oh-matrix.sources": label}),
    ])
    assert rows[0].split() == ["image", "kind", "release", "deps", "size", "id", "sources"]
    assert rows[1].startswith("oh-matrix/openhands:0.61.0-y") and rows[1].endswith(
        "OpenHands/software-agent-sdk@be9725b (openhands-sdk 1.0.0a5, openhands-tools 1.0.0a5)")
    assert rows[2].startswith("oh-matrix/openhands:0.62.0-x") and rows[2].endswith("  -")
    s = ImageSet(tag="0.61", resolved_version="0.61.0", backend="pypi", api="v0", app_image="a", runtime_image="r",
                 deps_hash="d", sources=[{"package": "openhands-sdk", "version": "1.0.0a5",
                           "repo": "OpenHands/software-agent-sdk", "commit": SHA}])
    assert images.build_lines({"0.61": s})[0].endswith(
        "sources=OpenHands/software-agent-sdk@be9725b (openhands-sdk 1.0.0a5)")
    # ImageSet survives the results.json round trip the session makes
    assert ImageSet.model_validate_json(s.model_dump_json()) == s


def test_the_base_is_worked_out_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.images import base

    calls = []

    def work(client: Any, python: Path) -> BaseImage:
        calls.append(python)
        time.sleep(0.1)
        return BaseImage("oh-matrix/base:x", str(python))

    class Images:
        def get(self, ref: str) -> object:
            return object()

    class Client:
        images = Images()

    monkeypatch.setattr(base, "_ensure_base", work)
    monkeypatch.setattr(base, "_known", {})
    threads = [threading.Thread(target=base.ensure_base, args=(Client(), Path("/py"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [Path("/py")]
