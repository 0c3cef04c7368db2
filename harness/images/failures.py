"""Builds known to fail, remembered so a warm run does not pay for them again.

A failure that the same inputs will repeat (pip cannot build a wheel of the pinned set, the
built app does not import, a release's true source archive cannot be had or is not what it
claims) is written to `<cache>/failed/<version>-<key>`, where the key covers those inputs
(the release's dependency hash and build recipe, or for a source archive the commit and
what `OH_MATRIX_SOURCES` held). The next run with the same inputs says so in one line
instead of rebuilding; new inputs get a new key and are tried. To retry the same inputs,
delete the file or run `oh-matrix images prune --failures`.

Failures of the moment (a registry or daemon that did not answer, a full disk) are not
remembered: they raise a plain ImageUnavailable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from harness import releases
from harness.errors import ImageUnavailable
from harness.paths import cache_root

# Words that say a pip or build failure came from the network or the machine, not from the
# inputs: such a failure may not happen again, so it is not remembered.
_TRANSIENT = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Connection (?:refused|reset)|Read ?timed out|ReadTimeoutError|"
    r"No space left on device|HTTP error 5\d\d",
    re.I,
)


class BuildFailed(ImageUnavailable):
    """A failure the same inputs will repeat: remembered under `failed/`."""


def transient(text: str) -> bool:
    return bool(_TRANSIENT.search(text))


def folder() -> Path:
    return cache_root() / "failed"


def path(name: str) -> Path:
    """`name` is `<version>-<key>`."""
    return folder() / name


def check(name: str, version: str | None = None) -> None:
    """Raise, in one line, if a build with these inputs failed before."""
    mark = path(name)
    try:
        text = mark.read_text().strip().splitlines()
    except OSError:
        return
    when, reason = (text[0], text[1]) if len(text) >= 2 else ("earlier", " ".join(text))
    raise ImageUnavailable(
        f"not rebuilt: {reason} (remembered {when}; to retry: rm {mark} or "
        f"oh-matrix images prune --failures)",
        resolved_version=version,
    )


def record(name: str, message: str) -> Path:
    """Remember a failure (atomically: a reader never sees half a file)."""
    d = folder()
    d.mkdir(exist_ok=True)
    mark = path(name)
    tmp = mark.with_name(f".{mark.name}.tmp")
    tmp.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n{' '.join(message.split())}\n")
    tmp.replace(mark)
    return mark


def forget_all(tags: Sequence[str] = ()) -> int:
    """Delete every remembered failure (with `tags`, those of the releases they name:
    `images prune --failures TAG`); how many there were."""
    d = folder()
    if not d.is_dir():
        return 0
    marks = [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
    if tags:  # a mark is `<version>-<key>`
        marks = [p for p in marks if any(releases.names_release(t, p.name.rsplit("-", 1)[0]) for t in tags)]
    for p in marks:
        p.unlink(missing_ok=True)
    return len(marks)
