"""What to deploy, chosen from one run's cells: a pure function of the results model, run as
a step of its own (workflow.py) before anything is written or rendered.

The pick is the newest release whose cell connected and passed all its tasks; among the
modes of that release, the one that asks least of the host (its rank in harness/modes.py);
then the fastest. A remedy only counts when nothing passed as is: a plain passing cell
always beats a tweaked one.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence

from harness import generations, modes
from harness.model import Alternative, BestRemedy, CellResult, Recommendation, RemedyTry


def version_key(version: str | None) -> tuple[int, ...]:
    """Numeric release order (1.11.0 > 0.62.0, which a string compare gets wrong); unknown sorts first."""
    m = re.match(r"\d+(?:\.\d+)*", version or "")
    parts = [int(p) for p in m.group().split(".")] if m else []
    while parts and parts[-1] == 0:  # 1.11 == 1.11.0
        parts.pop()
    return tuple(parts)


def cell_version(cell: CellResult) -> str | None:
    """The release a cell ran; a numeric tag stands in when resolution never happened."""
    return cell.resolved_version or (cell.tag if version_key(cell.tag) else None)


DEPLOYMENT_RANK = -1  # the user's own deployment as it is asks least of anyone: nothing to change


def _mode_cost(cell: CellResult, name: str) -> int:
    if cell.deployment and name == cell.mode:
        return DEPLOYMENT_RANK
    return modes.rank(name, generations.GENERATIONS.get(cell.api))  # a mode not known here (an old run): last


def _rank(cell: CellResult, mode: str, seconds: float | None) -> tuple[tuple[int, ...], int, float]:
    """Higher is better: newer release, then fewer host changes, then faster."""
    return version_key(cell_version(cell)), -_mode_cost(cell, mode), -(seconds if seconds is not None else math.inf)


def _plain_rank(cell: CellResult) -> tuple[tuple[int, ...], int, float]:
    return _rank(cell, cell.mode, cell.connect.seconds)


def _remedy_rank(cr: tuple[CellResult, RemedyTry]) -> tuple[tuple[int, ...], int, int, float]:
    """Newest release first, then what the remedy asks of the host (settings before a move to
    another mode before a change to the host itself), then the mode it ran in (a network of its
    own beats --network host), then speed."""
    cell, remedy = cr
    version, mode_cost, speed = _rank(cell, remedy.mode or cell.mode, remedy.seconds)
    return version, -remedy.asks, mode_cost, speed


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


def _label(cell: CellResult) -> str:
    version = cell_version(cell)
    return cell.tag if not version or version == cell.tag else f"{cell.tag} ({version})"


def _lost_by_older(best: CellResult, older: list[CellResult]) -> str | None:
    """What each older alternative gives up against the pick: the release, and the API generation."""
    new = cell_version(best)
    texts: dict[str | None, str] = {}
    for c in older:
        old = cell_version(c)
        if old in texts:
            continue
        api = f" ({c.api.upper()} API instead of {best.api.upper()})" if c.api != best.api else ""
        texts[old] = f"{old} is older than {new}{api}"
    return "; ".join(texts.values()) or None


def _not_deployable(best: CellResult, cells: Sequence[CellResult]) -> list[str]:
    """Tags that may be newer than the pick but passed in no mode, so the user knows why not."""
    ok = {c.tag for c in cells if c.passed}
    floor = version_key(cell_version(best))
    return list(dict.fromkeys(
        _label(c) for c in cells
        if c.tag not in ok and (cell_version(c) is None or version_key(cell_version(c)) > floor)))


def _plain(best: CellResult, cells: Sequence[CellResult]) -> Recommendation:
    floor = version_key(cell_version(best))
    older = sorted((c for c in cells if c.passed and version_key(cell_version(c)) < floor),
                   key=_plain_rank, reverse=True)
    mode_why = modes.why(best.mode, generations.GENERATIONS.get(best.api))
    ran = [t for t in best.tasks if t.verdict != "skip"]
    skipped = f" ({len(best.tasks) - len(ran)} skipped: not applicable here)" if len(ran) < len(best.tasks) else ""
    why = [f"{_label(best)} is the newest release that connected"
           + (f" and passed all {len(ran)} tasks{skipped}" if ran else f" (no tasks ran{skipped})"),
           f"{best.mode} is " + (f"your own deployment ({best.deployment}), as you run it: keep it"
                                 if best.deployment else mode_why or "a mode this tool does not rank")]
    if best.connect.seconds is not None:
        why.append(f"runtime ready in {best.connect.seconds:.0f}s")
    if missing := _not_deployable(best, cells):
        why.append(f"passed in no mode: {', '.join(missing)}")
    if best.backend == "pypi":
        why.append("the image was built here from PyPI wheels; elsewhere use the official image of the same release")
    return Recommendation(cell=best.id, tag=best.tag, resolved_version=cell_version(best), mode=best.mode,
                          docker_run=best.docker_run, why="; ".join(why) + ".",
                          older_alternatives=[Alternative(cell=c.id, resolved_version=cell_version(c))
                                              for c in older],
                          lost_by_older=_lost_by_older(best, older))


def _remedied(cell: CellResult, remedy: RemedyTry) -> Recommendation:
    # The rerun's own command when recorded (a remedy may change the mode); older runs: derived.
    hint = remedy.docker_run or (with_env(cell.docker_run, remedy.env) if cell.docker_run else None)
    if cell.deployment and remedy.fix:  # the user's own deployment, with a change a rerun proved
        why = (f"no cell passed as is; keep your deployment {cell.mode} ({cell.deployment}) on {_label(cell)} and "
               f"change this (remedy {remedy.name}, proven by a rerun): {remedy.settings()}.")
    else:
        why = (f"no cell passed as is; {cell.id} passes with remedy {remedy.name} "
               f"({remedy.settings() or 'no settings'})" + (f": {remedy.why}" if remedy.why else "")
               + (f"; it needs a change to this host: {remedy.host_change}" if remedy.host_change else "") + ".")
    return Recommendation(tag=cell.tag, resolved_version=cell_version(cell), mode=remedy.mode or cell.mode,
                          docker_run=hint, why=why,
                          best_remedy=BestRemedy(cell=cell.id, name=remedy.name, env=remedy.env,
                                                 docker_run_hint=hint))


def recommend(cells: Sequence[CellResult]) -> Recommendation:
    """The configuration to deploy. `cell` names a cell that passed as is, or is None; then
    `best_remedy` (and `docker_run`) carry the best cell that a remedy turned green, if any."""
    # The deployment is the app server: a headless cell proves the CLI entry point, not a deploy.
    api_cells = [c for c in cells if c.entrypoint == "api"]
    if plain := [c for c in api_cells if c.passed]:
        return _plain(max(plain, key=_plain_rank), api_cells)
    fixed = [(c, r) for c in api_cells if c.tasks_passed for r in c.remedies if r.verdict == "pass"]
    if fixed:
        return _remedied(*max(fixed, key=_remedy_rank))
    if not api_cells and cells:  # a run of the headless or CLI entry points only
        return Recommendation(why=f"no app server was run: the {', '.join(sorted({c.entrypoint for c in cells}))} "
                                  "cells prove an entry point, not a deployment")
    return Recommendation(why="no cell passed")
