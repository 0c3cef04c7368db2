"""What `oh-matrix images list` and `images build` print (the CLI only prints these lines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import ImageUnavailable
from harness.images import sources
from harness.model import ImageSet


def image_rows(listed: list[Any]) -> list[str]:
    """A header and one row per tag of each oh-matrix image (docker-py Image objects), with
    where its git-built packages came from (`-` for a release as the registry has it)."""
    rows = [f"{'image':46} {'kind':12} {'release':8} {'deps':13} {'size':>8}  {'id':12}  sources"]
    for img in sorted(listed, key=lambda i: (i.tags or [""])[0]):
        lb = img.labels or {}
        from_git = sources.summary(sources.parse_label(lb.get(sources.LABEL))) or "-"
        for tag in img.tags or ["<none>"]:
            rows.append(f"{tag:46} {lb.get('oh-matrix.image', ''):12} {lb.get('oh-matrix.release', '-'):8} "
                        f"{lb.get('oh-matrix.deps', '-'):13} {img.attrs['Size'] / 1e6:7.0f}M  "
                        f"{img.short_id[7:]:12}  {from_git}")
    return rows


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
