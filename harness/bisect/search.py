"""The binary search of a bisect, as `git bisect` walks commits: pure, the probe is given.

Over releases ordered oldest first, find the first whose outcome differs from the range's
start. Like `git bisect`, it assumes the outcome changes once in the range; a change that is
undone before the range's end is not seen, and the finding says the ends agree. A release
the harness could not judge (its image could not be had, the adapter refuses its API, the
harness failed) is skipped as `git bisect skip` skips a commit, and the untested release
nearest the middle is tried instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Probe:
    """One release's outcome in the bisected cell."""

    version: str
    outcome: str | None  # what is compared ("pass", "fail dns-unresolved"); None: not judged
    line: str  # the verdict as people read it, or why it could not be judged
    evidence: tuple[str, ...] = ()
    folder: str | None = None  # the run folder that holds the cell's results
    reused: bool = False  # taken from an earlier run of the same cell on this host


@dataclass
class Finding:
    releases: list[str]
    probes: list[Probe] = field(default_factory=list)  # in the order they ran
    last_same: Probe | None = None  # the newest release known to behave as the start
    first_different: Probe | None = None  # the oldest release known to differ from it
    why_undecided: str | None = None  # when no answer: why

    @property
    def skipped(self) -> list[Probe]:
        """Releases between the two neighbours that could not be judged: the change is in
        one of them or in first_different."""
        if self.last_same is None or self.first_different is None:
            return []
        lo, hi = self.releases.index(self.last_same.version), self.releases.index(self.first_different.version)
        return [p for p in self.probes if p.outcome is None and lo < self.releases.index(p.version) < hi]


def most_runs(n: int) -> int:
    """The runs a bisect over n releases takes at most when every release can be judged:
    the two ends, then one per halving of the n - 1 steps between them."""
    return 2 + math.ceil(math.log2(n - 1)) if n > 2 else n


def bisect(releases: list[str], probe: Callable[[str], Probe]) -> Finding:
    if len(releases) < 2:
        raise ValueError("a bisect needs at least two releases")
    found = Finding(list(releases))

    def run(i: int) -> Probe:
        p = probe(releases[i])
        found.probes.append(p)
        return p

    start, end = run(0), run(len(releases) - 1)
    for name, p in (("start", start), ("end", end)):
        if p.outcome is None:
            found.why_undecided = f"the range's {name}, {p.version}, could not be judged: {p.line}"
            return found
    if start.outcome == end.outcome:
        found.last_same = end
        found.why_undecided = (f"{start.version} and {end.version} agree ({start.line}): no change in the range "
                               "that lasts to its end")
        return found
    lo, hi, tried = 0, len(releases) - 1, {0: start, len(releases) - 1: end}
    while True:
        left = [i for i in range(lo + 1, hi) if i not in tried]
        if not left:
            break
        middle = (lo + hi) / 2
        i = min(left, key=lambda j: (abs(j - middle), j))
        p = tried[i] = run(i)
        if p.outcome is None:
            continue
        if p.outcome == start.outcome:
            lo = i
        else:
            hi = i
    found.last_same, found.first_different = tried[lo], tried[hi]
    return found
