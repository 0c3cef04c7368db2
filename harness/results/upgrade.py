"""The upgrade question, answered from one run: "I run release A in mode X today; what
happens if I move to release B?" Per mode, what the move does to the connect verdict (with the
new cause and direction) and to each task, and the exact difference between the commands the
run recommends for A and for B. A pure function of the results model, a step of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from harness import generations
from harness.model import CellResult, Upgrade, UpgradeMode
from harness.results.recommend import cell_version, recommend

# `docker run` options that take a value: an option and its value are one setting.
_VALUED = {"-e", "--env", "--env-file", "-v", "--volume", "-p", "--publish", "--network", "--add-host", "--name"}


def _verdict(cell: CellResult | None) -> str:
    if cell is None:
        return "not run"
    c = cell.connect
    return str(c.verdict) + (f" {c.cause}" if c.cause else "") + (f" ({c.direction})" if c.direction else "")


def _passed(cell: CellResult | None) -> str:
    """A side of a move: a cell that was not run (left out by --only or -k) is no fail."""
    if cell is None:
        return "not run"
    return "pass" if cell.passed else "fail"


def settings(docker_run: str | None) -> tuple[list[str], str | None]:
    """(the run's settings as `option value` strings, its image) from a docker run line."""
    if not docker_run:
        return [], None
    try:
        tokens = shlex.split(docker_run.split("&&")[-1])
    except ValueError:
        return [], None
    out, image, i = [], None, 2  # after `docker run`
    while i < len(tokens):
        tok = tokens[i]
        if tok in _VALUED and i + 1 < len(tokens):
            if tok not in ("--name",):
                out.append(f"{tok} {tokens[i + 1]}")
            i += 2
        elif tok.startswith("-"):
            out.append(tok)
            i += 1
        else:
            image = tok
            break
    return out, image


def _tasks_changed(a: CellResult | None, b: CellResult | None) -> list[str]:
    """Tasks whose outcome differs, those that moved alike (and, for a skip, for the same
    reason) on one line: five tasks skipped on the new release for one reason read as one."""
    groups: dict[tuple[str, str], list[str]] = {}
    for t in a.tasks if a else []:
        u = b.task(t.name) if b else None
        if u is None:
            groups.setdefault((f"{t.verdict} -> not run", ""), []).append(t.name)
        elif u.verdict != t.verdict:
            why = u.detail if u.verdict == "skip" else t.detail if t.verdict == "skip" else None
            groups.setdefault((f"{t.verdict} -> {u.verdict}", f" ({why})" if why else ""), []).append(t.name)
    return [f"{', '.join(names)}: {move}{why}" for (move, why), names in groups.items()]


def compare(cells: Sequence[CellResult], before: str, after: str) -> Upgrade:
    """The move from tag `before` to tag `after`, from the api cells of one run."""
    mine = [c for c in cells if c.entrypoint == "api"]
    old = {c.mode: c for c in mine if c.tag == before}
    new = {c.mode: c for c in mine if c.tag == after}
    if old and all(c.backend == "own" for c in old.values()):
        # from a deployment on its own image (own-NAME): that deployment as it is -> on `after`
        new = {m: c for m, c in new.items() if m in old}
    if not old and not new:
        return Upgrade(before=before, after=after)
    modes = []
    for mode in dict.fromkeys([*old, *new]):
        a, b = old.get(mode), new.get(mode)
        move = f"{_passed(a)} -> {_passed(b)}"
        modes.append(UpgradeMode(mode=mode, before=_verdict(a), after=_verdict(b), move=move,
                                 tasks_changed=_tasks_changed(a, b)))
    rec_a, rec_b = recommend(list(old.values())), recommend(list(new.values()))
    set_a, image_a = settings(rec_a.docker_run)
    set_b, image_b = settings(rec_b.docker_run)
    return Upgrade(
        before=before, after=after,
        before_version=cell_version(next(iter(old.values()))) if old else None,
        after_version=cell_version(next(iter(new.values()))) if new else None,
        modes=modes, command_before=rec_a.docker_run, command_after=rec_b.docker_run,
        mode_before=rec_a.mode, mode_after=rec_b.mode,
        settings_added=[x for x in set_b if x not in set_a], settings_removed=[x for x in set_a if x not in set_b],
        image_before=image_a, image_after=image_b,
        crosses=crossing(next(iter(old.values()), None), next(iter(new.values()), None)))


def crossing(a: CellResult | None, b: CellResult | None) -> str | None:
    """The move in words when it leaves one product for another (generations differ in
    whether the app starts its runtimes): what the new one no longer needs and what it does."""
    if a is None or b is None:
        return None
    ga, gb = generations.GENERATIONS.get(a.api), generations.GENERATIONS.get(b.api)
    if ga is None or gb is None or ga.starts_containers == gb.starts_containers:
        return None
    if ga.starts_containers:
        gone = ["Docker socket"] + ([f"runtime image ({ga.runtime_image_env})"] if ga.runtime_image_env else [])
        return (f"{a.tag} and {b.tag} are different products: {ga.title}, then {gb.title}. The second runs the "
                f"agent in its own container, so its command needs no {', no '.join(gone)} and no "
                f"host.docker.internal; it serves its API on port {gb.app_port}"
                + (f" behind a session key ({gb.api_key_env})" if gb.api_key_env else ""))
    return (f"{a.tag} and {b.tag} are different products: {ga.title}, then {gb.title}. The second starts a "
            "container per conversation through the Docker socket, which its command must now give it")
