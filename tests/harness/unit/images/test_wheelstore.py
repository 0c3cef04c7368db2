"""The uv collector's parts without the index: which wheel a platform takes, the lock read
into files, the shared store filled once and checked by hash, the wheelhouse as links."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from harness.errors import ImageUnavailable
from harness.images import wheelstore
from harness.images.failures import BuildFailed

PLAT = wheelstore.Platform("3.12.1", "x86_64", (2, 36))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("OH_MATRIX_CACHE", str(root))
    return root


P2014 = "pillow-11.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
LOCK = '''lock-version = "1.0"
[[packages]]
name = "pillow"
version = "11.0.0"
wheels = [
  { url = "https://f/{P2014}", hashes = { sha256 = "aa" } },
  { url = "https://f/pillow-11.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", hashes = { sha256 = "bb" } },
  { url = "https://f/pillow-11.0.0-cp312-cp312-musllinux_1_2_x86_64.whl", hashes = { sha256 = "cc" } },
]
[[packages]]
name = "func-timeout"
version = "4.3.5"
sdist = { url = "https://f/func_timeout-4.3.5.tar.gz", hashes = { sha256 = "dd" } }
[[packages]]
name = "openhands-ai"
version = "0.62.0"
archive = { path = "/x/openhands_ai-0.62.0-py3-none-any.whl", hashes = { sha256 = "ee" } }
[[packages]]
name = "six"
version = "1.17.0"
sdist = { url = "https://f/six-1.17.0.tar.gz", hashes = { sha256 = "ff" } }
wheels = [{ url = "https://f/six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "01" } }]
'''.replace("{P2014}", P2014)


def test_the_lock_gives_each_package_the_wheel_pip_would_take_else_its_sdist(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(LOCK)
    got = {p.name: p for p in wheelstore.packages(lock, PLAT, skip=["openhands-ai"])}
    assert list(got) == ["pillow", "func-timeout", "six"]  # the release's own wheel is on disk already
    assert got["pillow"].wheel and got["pillow"].wheel.name.endswith("manylinux_2_28_x86_64.whl")  # newest glibc
    assert got["func-timeout"].wheel is None and got["func-timeout"].sdist
    assert got["six"].wheel and got["six"].sdist is None  # a wheel, when there is one
    # a glibc older than a wheel needs: that wheel is not taken
    old = wheelstore.Platform("3.12.1", "x86_64", (2, 17))
    pillow = wheelstore.packages(lock, old, skip=["openhands-ai"])[0]
    assert pillow.wheel and "manylinux_2_17" in pillow.wheel.name


def test_a_package_with_nothing_for_the_platform_is_a_build_failure(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text('[[packages]]\nname = "pywin"\nversion = "1"\n'
                    'wheels = [{ url = "https://f/pywin-1-cp312-cp312-win_amd64.whl", hashes = { sha256 = "a" } }]\n')
    with pytest.raises(BuildFailed, match="pywin 1: the lock names no wheel for x86_64-manylinux_2_36 and no sdist"):
        wheelstore.packages(lock, PLAT)


def test_the_platform_takes_its_own_tags_best_first() -> None:
    tags = [str(t) for t in PLAT.tags()]
    assert tags[0] == "cp312-cp312-manylinux_2_36_x86_64"
    assert "cp312-cp312-manylinux2014_x86_64" in tags and "py3-none-any" in tags
    assert tags.index("cp312-abi3-manylinux_2_28_x86_64") < tags.index("py3-none-any")
    assert not any("musllinux" in t or "win" in t for t in tags)


def files(*bodies: bytes) -> list[wheelstore.File]:
    return [wheelstore.File(f"p{i}-1-py3-none-any.whl", f"https://f/p{i}.whl", hashlib.sha256(b).hexdigest())
            for i, b in enumerate(bodies)]


def served(bodies: dict[str, bytes], calls: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, content=bodies[request.url.path])

    return httpx.MockTransport(answer)


def test_the_store_fetches_each_file_once_and_links_it_into_a_house(tmp_path: Path) -> None:
    wanted = files(b"one", b"two")
    calls: list[str] = []
    transport = served({"/p0.whl": b"one", "/p1.whl": b"two"}, calls)
    assert wheelstore.fetch(wanted + wanted, transport) == (2, 6)  # the same file twice: fetched once
    assert wheelstore.fetch(wanted, transport) == (0, 0)  # a second release: nothing to fetch
    assert sorted(calls) == ["/p0.whl", "/p1.whl"]
    stored = wanted[0].stored
    assert stored.read_bytes() == b"one" and stored.parent.name == wanted[0].sha256
    house = tmp_path / "house"
    house.mkdir()
    linked = list(wheelstore.link([f.stored for f in wanted], house))
    assert [p.name for p in linked] == [f.name for f in wanted]
    assert linked[0].stat().st_ino == stored.stat().st_ino  # a link, not a copy


def test_a_file_whose_hash_is_not_the_locks_never_enters_the_store() -> None:
    [f] = files(b"expected")
    with pytest.raises(BuildFailed, match=r"sha256 .* is not the lock's"):
        wheelstore.fetch([f], served({"/p0.whl": b"tampered"}, []))
    assert not f.stored.exists() and not any(f.stored.parent.iterdir())


def test_an_index_that_does_not_answer_is_a_failure_of_the_moment() -> None:
    [f] = files(b"x")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    with pytest.raises(ImageUnavailable) as e:
        wheelstore.fetch([f], httpx.MockTransport(down))
    assert not isinstance(e.value, BuildFailed)
    assert "fetching p0-1-py3-none-any.whl failed: ConnectError" in str(e.value)
