"""The official images oh-matrix pulled itself, for `images list` and `images prune`.

A pulled image cannot carry the harness's labels, so its reference is remembered in the
cache (`pulled.json`) with the image id each pull gave. Only a pull the harness really did
is remembered: an image the user already had is never listed as ours, never pruned.
"""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from harness.paths import cache_root


def _file() -> Path:
    return cache_root() / "pulled.json"


def remembered() -> dict[str, list[str]]:
    """reference -> the image ids its pulls gave, oldest first."""
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):  # none yet, or unreadable: nothing is known to be ours
        return {}
    return {str(k): [str(i) for i in v] for k, v in data.items() if isinstance(v, list)}


def _write(data: dict[str, list[str]]) -> None:
    tmp = _file().with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(_file())


def remember(ref: str, image_id: str) -> None:
    with FileLock(str(_file()) + ".lock"):
        data = remembered()
        ids = [i for i in data.get(ref, []) if i != image_id]
        data[ref] = [*ids, image_id]
        _write(data)


def keep(ref: str, image_ids: list[str]) -> None:
    """What is left of a reference's pulls after a prune (none: the reference is forgotten)."""
    with FileLock(str(_file()) + ".lock"):
        data = remembered()
        if image_ids:
            data[ref] = image_ids
        else:
            data.pop(ref, None)
        _write(data)
