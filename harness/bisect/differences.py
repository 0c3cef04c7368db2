"""What the two releases a bisect ends on differ in, as far as the harness can read it: their
API generations, and each setting that their cells' diagnosis and `docker run` lines name,
looked up in the releases' own code (the openhands-ai wheels the builds fetched)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from harness import generations
from harness.bisect.search import Finding, Probe
from harness.errors import InputError
from harness.model import read_run
from harness.paths import cache_root

_SETTING = re.compile(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b")
# Settings that are the harness's or Docker's, not OpenHands': never looked up.
_NOT_OPENHANDS = {"DOCKER_HOST", "LOG_ALL_EVENTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
_SECTIONS = ("SANDBOX_", "LLM_", "AGENT_", "CORE_")  # V0's config sections: SANDBOX_X is [sandbox] x


def _generation(version: str) -> str:
    try:
        g = generations.get(generations.for_tag(version).name)
    except InputError as e:
        return str(e)
    return f"{g.name} (adapter {g.client.partition(':')[0]})"


def _facts(version: str) -> list[str]:
    try:
        return generations.for_tag(version).differences(version)
    except InputError:
        return []


def _wheel(version: str) -> Path | None:
    found = sorted((cache_root() / "release-wheels").glob(f"openhands_ai-{version}-*.whl"))
    return found[-1] if found else None


def _names(probe: Probe) -> set[str]:
    """The settings a step's cell names: in its evidence, its line and its `docker run` line."""
    texts = [probe.line, *probe.evidence]
    if probe.folder:
        try:
            run = read_run(probe.folder)
        except InputError:
            run = None
        for c in run.cells if run else []:
            texts += [c.docker_run or "", *c.notes, *(e.text for e in c.connect.evidence)]
    return {n for t in texts for n in _SETTING.findall(t)} - _NOT_OPENHANDS


def _where(wheel: zipfile.ZipFile, name: str) -> list[str]:
    """The wheel's Python files that read the setting: as a string (os.getenv('NAME')), or as
    V0's config field (SANDBOX_USE_HOST_NETWORK is `use_host_network` of the sandbox section).
    A name in the evidence that the code never quotes (AF_INET) is no setting."""
    field = next((name[len(s):].lower() for s in _SECTIONS if name.startswith(s)), None)
    hits = []
    for info in wheel.infolist():
        if not info.filename.endswith(".py") or not info.filename.startswith("openhands/"):
            continue
        text = wheel.read(info).decode(errors="replace")
        if f"'{name}'" in text or f'"{name}"' in text or (field and re.search(rf"\b{field}\s*:", text)):
            hits.append(info.filename)
    return hits


def between(found: Finding) -> list[str]:
    a, b = found.last_same, found.first_different
    assert a is not None and b is not None
    out = []
    ga, gb = _generation(a.version), _generation(b.version)
    out.append(f"API generation: {a.version} {ga}, {b.version} {gb}" if ga != gb
               else f"API generation: the same ({ga})")
    facts = {p.version: _facts(p.version) for p in (a, b)}  # generations.Generation.before
    for p, other in ((a, b), (b, a)):  # what one release has otherwise and the other not
        out += [f"{p.version} only, {k}" for k in facts[p.version] if k not in facts[other.version]]
    wheels = {v: _wheel(v) for v in (a.version, b.version)}
    if missing := [v for v, w in wheels.items() if w is None]:
        out.append(f"settings: not read: no wheel of {', '.join(missing)} on this machine (built by the official "
                   "backend, or its wheel was removed from the cache)")
        return out
    names = sorted(_names(a) | _names(b))
    same = []
    opened = {v: zipfile.ZipFile(w) for v, w in wheels.items() if w is not None}
    try:
        for n in names:
            where = {v: _where(z, n) for v, z in opened.items()}
            wa, wb = where[a.version], where[b.version]
            if not wa and not wb:  # read by neither: not a setting of OpenHands'
                continue
            if wa and wb:
                same.append(n)
                continue
            told = [f"{v} " + (f"reads it ({', '.join(w[:2])})" if w else "has no mention of it")
                    for v, w in where.items()]
            out.append(f"{n}: " + "; ".join(told))
    finally:
        for z in opened.values():
            z.close()
    if same:
        out.append("read by both releases' code alike: " + ", ".join(same))
    if not names:
        out.append("settings: the two cells name none")
    return out
