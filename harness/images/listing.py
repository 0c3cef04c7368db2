"""What `oh-matrix images list`, `images build` and `images prune` do and print (the CLI
only prints these lines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from docker.errors import APIError, ImageNotFound

from harness import releases
from harness.errors import ImageUnavailable
from harness.images import pulled, sources
from harness.model import ImageSet

LABEL = "oh-matrix.image"  # on every image the harness built


def image_records(listed: list[Any]) -> list[dict[str, Any]]:
    """One record per tag of each oh-matrix image (docker-py Image objects), with where its
    git-built packages came from (`-` for a release as the registry has it)."""
    out = []
    for img in sorted(listed, key=lambda i: (i.tags or [""])[0]):
        lb = img.labels or {}
        from_git = sources.summary(sources.parse_label(lb.get(sources.LABEL))) or "-"
        out += [{"image": tag, "kind": lb.get("oh-matrix.image", ""), "release": lb.get("oh-matrix.release", "-"),
                 "deps": lb.get("oh-matrix.deps", "-"), "size_mb": round(img.attrs["Size"] / 1e6),
                 "id": img.short_id[7:], "sources": from_git} for tag in img.tags or ["<none>"]]
    return out


def pulled_records(client: Any) -> list[dict[str, Any]]:
    """One record per official image the harness pulled that is still here (images/pulled.py)."""
    out = []
    for ref, ids in sorted(pulled.remembered().items()):
        try:
            img = client.images.get(ref)
        except ImageNotFound:
            continue
        if img.id not in ids:  # the name now points at an image someone else pulled or built
            continue
        out.append({"image": ref, "kind": "official", "release": "-", "deps": "pulled",
                    "size_mb": round(img.attrs["Size"] / 1e6), "id": img.short_id[7:], "sources": "-"})
    return out


def rows(records: list[dict[str, Any]]) -> list[str]:
    """`images list` as printed: a header and one row per record."""
    out = [f"{'image':46} {'kind':12} {'release':8} {'deps':13} {'size':>8}  {'id':12}  sources"]
    out += [f"{r['image']:46} {r['kind']:12} {r['release']:8} {r['deps']:13} {r['size_mb']:7.0f}M  "
            f"{r['id']:12}  {r['sources']}" for r in records]
    return out


def image_rows(listed: list[Any]) -> list[str]:
    """A header and one row per tag of each oh-matrix image."""
    return rows(image_records(listed))


def pulled_rows(client: Any) -> list[str]:
    """One row per official image the harness pulled that is still here, no header."""
    return rows(pulled_records(client))[1:]


def _remove(client: Any, ref: str, force: bool = False) -> int:
    try:
        client.images.remove(ref, force=force)
        return 1
    except ImageNotFound:
        return 0
    except APIError:  # a newer image is built on it, or a container uses it: leave it
        return 0


def _ours(version: str, tags: Sequence[str]) -> bool:
    return not tags or any(releases.names_release(t, version) for t in tags)


def _pulled_release(ref: str) -> str:
    """The release a pulled app or runtime reference names by its tag (`openhands:0.62`,
    `runtime:0.62-nikolaik`); "" for any other image (an agent-server's tag is its own
    package's version, not a release's: a release-limited prune leaves it)."""
    repository, _, tag = ref.rpartition(":")
    if repository.rsplit("/", 1)[-1] not in ("openhands", "runtime"):
        return ""
    return tag.split("-", 1)[0]


def prune(client: Any, listed: list[Any], every: bool, tags: Sequence[str] = ()) -> int:
    """Superseded builds (an older image of the same kind and release, left by a recipe or
    dependency change), the harness's dangling leftovers, and pulls the same name has moved
    on from; with `every`, every image the harness built or pulled. With `tags`, only the
    images of those releases (a base image is every release's: it stays). Nothing else: an
    image without the harness's label that it did not pull is the user's. Returns how many
    went."""
    removed = 0
    newest: dict[tuple[str, str], str] = {}
    for img in sorted(listed, key=lambda i: i.attrs["Created"]):
        if release := img.labels.get("oh-matrix.release", ""):
            newest[(img.labels.get(LABEL, ""), release)] = img.id
    for img in listed:
        kind, release = img.labels.get(LABEL, ""), img.labels.get("oh-matrix.release", "")
        if tags and not (release and _ours(release, tags)):
            continue
        if every or (release and newest.get((kind, release)) != img.id):
            removed += sum(_remove(client, tag, force=every) for tag in img.tags)
    for img in client.images.list(filters={"dangling": True, "label": LABEL}):
        if _ours((img.labels or {}).get("oh-matrix.release", ""), tags):
            removed += _remove(client, img.id)
    for ref, ids in pulled.remembered().items():
        if tags and not _ours(_pulled_release(ref), tags):
            continue
        removed += _prune_pulled(client, ref, ids, every)
    return removed


def _prune_pulled(client: Any, ref: str, ids: list[str], every: bool) -> int:
    """One remembered pull's leftovers (with `every`, the pull itself); what is left of it is
    remembered again."""
    removed = 0
    current = _image(client, ref)
    for old in ids:  # earlier pulls of a moving tag (latest), once nothing names them
        image = _image(client, old) if current is None or old != current.id else None
        if image is not None and not image.tags:
            removed += _remove(client, old)
    if every and current is not None and current.id in ids:  # the name still points at the harness's pull
        removed += _remove(client, ref, force=True)
    pulled.keep(ref, [i for i in ids if _image(client, i) is not None])
    return removed


def _image(client: Any, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def build_lines(results: Mapping[str, ImageSet | ImageUnavailable]) -> list[str]:
    """One line per tag of `prepare_all`'s answer."""
    lines = []
    for tag, r in results.items():
        if isinstance(r, ImageUnavailable):
            version = f" ({r.resolved_version})" if r.resolved_version else ""
            lines.append(f"{tag}{version}: image-unavailable: {r}")
            continue
        line = (f"{tag}: {r.resolved_version} via {r.backend}  app={r.app_image}  "
                f"runtime={r.runtime_image}  deps={r.deps_hash or '-'}")
        if r.sources:
            line += f"  sources={sources.summary(r.sources)}"
        lines.append(line)
    return lines
