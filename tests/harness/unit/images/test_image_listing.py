"""images list / prune on what the harness pulled: its own pulls only, never the user's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from harness.images import listing, pulled


@dataclass
class Img:
    id: str
    tags: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=lambda: {"Size": 10**9, "Created": "2026-12-01"})

    @property
    def short_id(self) -> str:
        return self.id[:19]


class Images:
    def __init__(self, images: list[Img]) -> None:
        self.all = images

    def get(self, ref: str) -> Img:
        for i in self.all:
            if ref == i.id or ref in i.tags:
                return i
        raise ImageNotFound(ref)

    def list(self, filters: dict[str, Any]) -> list[Img]:
        found = [i for i in self.all if not filters.get("dangling") or not i.tags]
        return [i for i in found if "label" not in filters or filters["label"] in i.labels]

    def remove(self, ref: str, force: bool = False) -> None:
        img = self.get(ref)
        if ref in img.tags:
            img.tags.remove(ref)
            if img.tags:
                return
        self.all.remove(img)


class Client:
    def __init__(self, images: list[Img]) -> None:
        self.images = Images(images)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))


def test_pulls_are_listed_kept_by_prune_and_removed_by_prune_all_and_the_users_images_never() -> None:
    mirror = "registry.example:5000/openhands/openhands:latest"
    old_pull = Img("sha256:" + "a" * 64, [])  # latest before it moved: now dangling
    new_pull = Img("sha256:" + "b" * 64, [mirror])
    users = Img("sha256:" + "c" * 64, ["docker.openhands.dev/openhands/openhands:0.62"])  # pulled by the user
    users_dangling = Img("sha256:" + "d" * 64, [])
    client = Client([old_pull, new_pull, users, users_dangling])
    pulled.remember(mirror, old_pull.id)
    pulled.remember(mirror, new_pull.id)

    rows = listing.pulled_rows(client)
    assert len(rows) == 1 and rows[0].startswith(mirror) and "official" in rows[0]
    assert listing.prune(client, [], every=False) == 1  # the earlier pull of latest, nothing else
    assert client.images.all == [new_pull, users, users_dangling]
    assert pulled.remembered() == {mirror: [new_pull.id]}
    assert listing.prune(client, [], every=True) == 1
    assert client.images.all == [users, users_dangling] and pulled.remembered() == {}


def test_a_name_that_now_points_elsewhere_is_not_listed_as_ours() -> None:
    ref = "docker.openhands.dev/openhands/openhands:0.62"
    pulled.remember(ref, "sha256:" + "e" * 64)
    client = Client([Img("sha256:" + "f" * 64, [ref])])  # the user pulled it again since
    assert listing.pulled_rows(client) == []
    listing.prune(client, [], every=True)
    assert client.images.get(ref)  # and prune --all leaves it


def built(n: str, kind: str, release: str, created: str = "2026-12-01") -> Img:
    return Img("sha256:" + n * 64, [f"oh-matrix/{kind}:{release or 'base'}-{n}"],
               {listing.LABEL: kind, "oh-matrix.release": release},
               {"Size": 10**9, "Created": created})


def test_prune_with_a_tag_takes_only_that_releases_images() -> None:
    """`images prune --all 0.62` once removed every image the harness made: the tag is
    honoured, for builds (each 0.62 patch), dangling builds and official pulls alike; the
    base image (every release's) and an agent-server (its own package's version) stay."""
    registry = "docker.openhands.dev/openhands"
    app0, app1, older = built("1", "app", "0.62.0"), built("2", "app", "0.62.1"), built("3", "app", "0.62.1", "2026-11")
    other, base, near = built("4", "app", "1.0.0"), built("5", "base", ""), built("6", "app", "0.620.0")
    dangling = Img("sha256:" + "7" * 64, [], {listing.LABEL: "app", "oh-matrix.release": "0.62.0"})
    pulls = {f"{registry}/openhands:0.62": "8", f"{registry}/runtime:0.62-nikolaik": "9",
             f"{registry}/openhands:1.0": "a", f"{registry}/agent-server:0.62.0-python": "b"}
    pulled_images = [Img("sha256:" + n * 64, [ref]) for ref, n in pulls.items()]
    client = Client([app0, app1, older, other, base, near, dangling, *pulled_images])
    for img in pulled_images:
        pulled.remember(img.tags[0], img.id)
    labelled = [app0, app1, older, other, base, near]

    assert listing.prune(client, list(labelled), every=False, tags=["0.62"]) == 2  # the superseded 0.62.1, dangling
    assert older not in client.images.all and dangling not in client.images.all
    assert listing.prune(client, list(labelled), every=True, tags=["0.62.0"]) == 1
    assert app0 not in client.images.all and app1 in client.images.all
    assert listing.prune(client, [app1, other, base, near], every=True, tags=["0.62"]) == 3  # app1 and two pulls
    left = {t for i in client.images.all for t in i.tags}
    assert left == {*other.tags, *base.tags, *near.tags, f"{registry}/openhands:1.0",
                    f"{registry}/agent-server:0.62.0-python"}
