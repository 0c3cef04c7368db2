"""What a release tag says without asking a registry (the tags themselves: releases.py): its
grammar, the releases a MAJOR.MINOR[.PATCH] tag names, the version a Canvas tag spells. Pure:
the matrix reader checks its targets' tags with it and runs nothing (docs/architecture.md,
"Pure parts").
"""

from __future__ import annotations

import re

from harness.errors import InputError

CANVAS_PREFIX = "canvas-"
TAG_RE = re.compile(r"latest(?:-(?P<back>[1-9]\d*))?|(?:canvas-)?\d+\.\d+(?:\.\d+)?")
TAG_WORDS = "MAJOR.MINOR, MAJOR.MINOR.PATCH, 'canvas-MAJOR.MINOR[.PATCH]', 'latest' or 'latest-N'"


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise InputError(f"expected {TAG_WORDS}, got {tag!r}")
    return tag


RELEASE_RE = re.compile(r"\d+\.\d+(?:\.\d+)?")  # what names releases without asking the index


def check_release(tag: str) -> str:
    """A tag that names releases by itself (MAJOR.MINOR or MAJOR.MINOR.PATCH): `latest` is
    whichever release is newest on the index today, so it names no image kept from before."""
    if not RELEASE_RE.fullmatch(tag):
        raise InputError(f"expected MAJOR.MINOR or MAJOR.MINOR.PATCH, got {tag!r}")
    return tag


def names_release(tag: str, version: str) -> bool:
    """Whether a MAJOR.MINOR or MAJOR.MINOR.PATCH tag takes `version`: MAJOR.MINOR.PATCH is
    that release, MAJOR.MINOR each of its patches."""
    return version == tag or (tag.count(".") == 1 and version.startswith(tag + "."))


def canvas_release(tag: str) -> str:
    """The version a Canvas tag spells without the registry (`canvas-1.16` -> `1.16`), or
    the tag itself (`latest`, `latest-N`)."""
    return tag.removeprefix(CANVAS_PREFIX)
