"""What to deploy, chosen from one run's cells: a pure function of results.json.

The pick is the newest release whose cell connected and passed all its tasks; among the
modes of that release, the one that asks least of the host; then the fastest. A remedy
only counts when nothing passed as is: a plain passing cell always beats a tweaked one.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from harness.remedies import settings

Cell = dict[str, Any]

# Fewest host changes first: host-gateway is the documented command as is.
MODE_PREFERENCE = ("host-gateway", "custom-network", "host", "bridge")
MODE_WHY = {
    "host-gateway": "the documented command as is",
    "custom-network": "the documented command on a Docker network of its own",
    "host": "the documented command with --network host",
    "bridge": "the default bridge without --add-host",
}


def version_key(version: str | None) -> tuple[int, ...]:
    """Numeric release order (1.11.0 > 0.62.0, which a string compare gets wrong); unknown sorts first."""
    m = re.match(r"\d+(?:\.\d+)*", version or "")
    parts = [int(p) for p in m.group().split(".")] if m else []
    while parts and parts[-1] == 0:  # 1.11 == 1.11.0
        parts.pop()
    return tuple(parts)


def cell_version(cell: Cell) -> str | None:
    """The release a cell ran; a numeric tag stands in when resolution never happened."""
    resolved: str | None = cell.get("resolved_version")
    return resolved or (cell["tag"] if version_key(cell["tag"]) else None)


def tasks_passed(cell: Cell) -> bool:
    return all(t.get("verdict") == "pass" for t in cell.get("tasks") or [])  # none run: vacuously


def passed(cell: Cell) -> bool:
    return cell["connect"]["verdict"] == "pass" and tasks_passed(cell)


def _rank(cell: Cell, seconds: float | None) -> tuple[tuple[int, ...], int, float]:
    """Higher is better: newer release, then fewer host changes, then faster."""
    mode = cell["mode"]
    cost = MODE_PREFERENCE.index(mode) if mode in MODE_PREFERENCE else len(MODE_PREFERENCE)
    return version_key(cell_version(cell)), -cost, -(seconds if seconds is not None else math.inf)


def _plain_rank(cell: Cell) -> tuple[tuple[int, ...], int, float]:
    return _rank(cell, cell["connect"].get("seconds"))


def with_env(docker_run: str, env: dict[str, str]) -> str | None:
    """The cell's command with a remedy's env added (replacing values it already set);
    None when the line cannot be read as a shell command."""
    try:
        tokens = shlex.split(docker_run)
    except ValueError:
        return None
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "-e" and i + 1 < len(tokens) and tokens[i + 1].split("=", 1)[0] in env:
            i += 2
            continue
        kept.append(tokens[i])
        i += 1
    runs = [i for i in range(1, len(kept)) if kept[i - 1] == "docker" and kept[i] == "run"]
    if not runs:
        return None
    at = runs[0] + 1
    kept[at:at] = [part for k, v in env.items() for part in ("-e", f"{k}={v}")]
    return " ".join(t if t == "&&" else shlex.quote(t) for t in kept)


def _label(cell: Cell) -> str:
    version = cell_version(cell)
    return cell["tag"] if not version or version == cell["tag"] else f"{cell['tag']} ({version})"


def _api(cell: Cell) -> str:
    return str(cell.get("api") or "?").upper()


def _lost_by_older(best: Cell, older: list[Cell]) -> str | None:
    """What each older alternative gives up against the pick: the release, and the API generation."""
    new = cell_version(best)
    texts: dict[str | None, str] = {}
    for c in older:
        old = cell_version(c)
        if old in texts:
            continue
        api = f" ({_api(c)} API instead of {_api(best)})" if c.get("api") != best.get("api") else ""
        texts[old] = f"{old} is older than {new}{api}"
    return "; ".join(texts.values()) or None


def _not_deployable(best: Cell, cells: list[Cell]) -> list[str]:
    """Tags that may be newer than the pick but passed in no mode, so the user knows why not."""
    ok = {c["tag"] for c in cells if passed(c)}
    floor = version_key(cell_version(best))
    return list(dict.fromkeys(
        _label(c) for c in cells
        if c["tag"] not in ok and (cell_version(c) is None or version_key(cell_version(c)) > floor)))


def _empty() -> dict[str, Any]:
    # One shape for every outcome, so renderers need no key checks.
    return {"cell": None, "tag": None, "resolved_version": None, "mode": None, "docker_run": None,
            "why": "", "older_alternatives": [], "lost_by_older": None, "best_remedy": None}


def _plain(best: Cell, cells: list[Cell]) -> dict[str, Any]:
    plain = [c for c in cells if passed(c)]
    floor = version_key(cell_version(best))
    older = sorted((c for c in plain if version_key(cell_version(c)) < floor), key=_plain_rank, reverse=True)
    tasks = best.get("tasks") or []
    seconds = best["connect"].get("seconds")
    why = [f"{_label(best)} is the newest release that connected"
           + (f" and passed all {len(tasks)} tasks" if tasks else " (no tasks ran)"),
           f"{best['mode']} is {MODE_WHY.get(best['mode'], 'a mode this tool does not rank')}"]
    if seconds is not None:
        why.append(f"runtime ready in {seconds:.0f}s")
    if missing := _not_deployable(best, cells):
        why.append(f"passed in no mode: {', '.join(missing)}")
    if best.get("backend") == "pypi":
        why.append("the image was built here from PyPI wheels; elsewhere use the official image of the same release")
    return {**_empty(), "cell": best["id"], "tag": best["tag"], "resolved_version": cell_version(best),
            "mode": best["mode"], "docker_run": best.get("docker_run"), "why": "; ".join(why) + ".",
            "older_alternatives": [{"cell": c["id"], "resolved_version": cell_version(c)} for c in older],
            "lost_by_older": _lost_by_older(best, older)}


def _remedy_rank(cell: Cell, remedy: dict[str, Any]) -> tuple[tuple[int, ...], int, float]:
    """Ranked in the mode the remedy ran in: a move to a network of its own beats --network host."""
    return _rank({**cell, "mode": remedy.get("mode") or cell["mode"]}, remedy.get("seconds"))


def _remedied(cell: Cell, remedy: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, str] = remedy.get("env") or {}
    # The rerun's own command when recorded (a remedy may change the mode); older runs: derived.
    hint = remedy.get("docker_run") or (with_env(cell["docker_run"], env) if cell.get("docker_run") else None)
    why = (f"no cell passed as is; {cell['id']} passes with remedy {remedy['name']} ({settings(remedy)})"
           + (f": {remedy['why']}" if remedy.get("why") else "") + ".")
    return {**_empty(), "tag": cell["tag"], "resolved_version": cell_version(cell),
            "mode": remedy.get("mode") or cell["mode"],
            "docker_run": hint, "why": why,
            "best_remedy": {"cell": cell["id"], "name": remedy["name"], "env": env, "docker_run_hint": hint}}


def recommend(run: dict[str, Any]) -> dict[str, Any]:
    """The configuration to deploy. `cell` names a cell that passed as is, or is None; then
    `best_remedy` (and `docker_run`) carry the best cell that a remedy turned green, if any."""
    # The deployment is the app server: a headless cell proves the CLI entry point, not a deploy.
    cells: list[Cell] = [c for c in run.get("cells") or [] if c.get("entrypoint", "api") == "api"]
    if plain := [c for c in cells if passed(c)]:
        return _plain(max(plain, key=_plain_rank), cells)
    fixed = [(c, r) for c in cells if tasks_passed(c)
             for r in c.get("remedies") or [] if r.get("verdict") == "pass"]
    if fixed:
        return _remedied(*max(fixed, key=lambda cr: _remedy_rank(*cr)))
    return {**_empty(), "why": "no cell passed"}
