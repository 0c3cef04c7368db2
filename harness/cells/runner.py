"""A cell as the run sees it: which entry point runs it, the once-more rule, the remedy
search, redaction. Plain functions over a RunContext; the pytest plugin calls them in
whichever process runs the cell."""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import replace
from pathlib import Path

from harness import remedies
from harness.cells import admission
from harness.cells.api import ApiCell
from harness.cells.caller import CallerCell
from harness.cells.cell import CellCore, daemon_lost
from harness.cells.cli import CliCell
from harness.cells.headless import HeadlessCell
from harness.cells.native import NativeCell
from harness.cells.plan import CellPlan
from harness.cells.workspace import WorkspaceCell
from harness.context import RunContext
from harness.host import docker_host, podman
from harness.matrix import Cell, Matrix
from harness.model import Cause, CellResult, Connect, Direction, Evidence, ImageFailure, Source, Verdict
from harness.openhands import LlmSettings
from harness.secrets import Secret, redact_result, secret_names
from harness.tasks.taskrun import LlmChoice

# The entry points a matrix may name (`run.entrypoints`), and who runs each.
ENTRYPOINTS: dict[str, type[CellCore]] = {"api": ApiCell, "headless": HeadlessCell, "cli": CliCell,
                                          "caller": CallerCell, "workspace": WorkspaceCell}
LOST_WORKER = ("the worker running this cell died before it wrote a result (killed or crashed); "
               "what it started was swept at the end of the run")


def entry(plan: CellPlan) -> type[CellCore]:
    """Who runs the cell: a mode whose launch is a host process (modes.ProcessMode) its own
    cell, else the matrix's entry point."""
    return NativeCell if getattr(plan.cell.mode.spec, "host_process", False) else ENTRYPOINTS[plan.cell.entrypoint]


def run_cell(plan: CellPlan) -> CellResult:
    """One cell; once more before its verdict is written when the first attempt failed for a
    reason of the moment (diagnosis.Decision.rerun): "again" as it was, "alone" with every boot
    slot held, so the machine's load is not what ran one of OpenHands' own clocks out. A grace
    that still runs out alone is a finding about this host, said in those words."""
    result = entry(plan)(plan).run()
    # a release that refused this podman in its own words: said once, no remedy exists here
    if (said := podman.refused([e.text for e in result.connect.evidence])) is not None:
        result.notes.append(said)
    rerun = result.connect.rerun
    if rerun is None:
        return result
    first = result
    result = entry(plan)(replace(plan, alone=rerun == "alone")).run()
    load = f"; the machine meanwhile: {first.boot.summary()}" if rerun == "alone" else ""
    result.notes.append(f"run twice: the first attempt failed {first.connect.cause} after {first.connect.seconds} s "
                        f"({first.connect.evidence[0].text[:200]}){load}; "
                        + ("the rerun had the machine to itself" if rerun == "alone" else "ran again"))
    if rerun == "alone" and result.connect.cause == Cause.STARTUP_GRACE:
        b, gen = result.boot, plan.gen
        took = f"with the machine to itself its runtime answered after {b.runtime_seconds or '?'} s ({b.summary()})"
        if gen.startup_grace_env and gen.startup_grace_env in plan.env:
            finding = (f"the startup grace set here ({gen.startup_grace_env}={plan.env[gen.startup_grace_env]}) is "
                       f"shorter than this host needs: {took}")
        else:
            finding = (f"this host is too slow for {plan.cell.target.tag}'s default startup grace "
                       f"({b.grace or '?'} s): {took}")
        result.connect.evidence.insert(0, Evidence(source=Source.HARNESS, text=finding))
        result.notes.append(finding)
    return result


def llm_choice(mode: str) -> LlmChoice:
    if mode == "replay":
        return LlmChoice(replay=True)
    if mode != "real":
        return LlmChoice()
    # the key and the endpoint are the user's secrets; the model is said in the cell's notes
    key, url = (Secret(os.environ.get(n, ""), n, n) for n in ("LLM_API_KEY", "LLM_BASE_URL"))
    return LlmChoice(LlmSettings(os.environ["LLM_MODEL"], key, url))


def cell_env(m: Matrix, cell: Cell, ctx: RunContext) -> dict[str, str]:
    return {**m.env, **cell.mode.env, **ctx.app_env}


def error_cell(cell: Cell, ctx: RunContext, cause: Cause, why: str) -> CellResult:
    """A cell the harness could not run: no images, or a worker that died mid-cell."""
    images = ctx.images.get(cell.target.tag)
    return CellResult(id=cell.id, tag=cell.target.tag, mode=cell.mode.name, api=cell.target.api,
                      entrypoint=cell.entrypoint, resolved_version=images.resolved_version if images else None,
                      backend=ctx.backend, connect=Connect(verdict=Verdict.ERROR, cause=cause, evidence=[
                          Evidence(source=Source.HARNESS, text=why)]))


def run_one(ctx: RunContext, m: Matrix, cell: Cell, tasks: list[str] | None = None) -> CellResult:
    """Run one cell (any process): connect, then `tasks` (default: the matrix's) if it
    connected; with --remedies, a failed cell is rerun once per known fix. Whatever goes wrong
    inside is this cell's result, `error harness-error` naming the exception and where in the
    harness it was raised: never another cell's, never the run's."""
    try:
        return _run_one(ctx, m, cell, tasks)
    except Exception as e:  # a bug of the harness's, or a host it did not expect
        result = error_cell(cell, ctx, Cause.HARNESS_ERROR, f"the harness failed inside this cell: {describe(e)}")
        if (why := docker_host.lost(e)) is not None:  # not a bug: the daemon went away
            result.connect = daemon_lost(why)
        own = cell.mode.deployment.service.environment if cell.mode.deployment else {}
        return redact_result(result, {**own, **cell_env(m, cell, ctx)}, [])  # a message may quote a setting


def describe(e: BaseException) -> str:
    """`Type: message (at harness/FILE.py:LINE in FUNCTION)`, the last frame of the harness's own."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).is_relative_to(PACKAGE)]
    at = f" (at harness/{Path(frames[-1].filename).relative_to(PACKAGE)}:{frames[-1].lineno} in " \
         f"{frames[-1].name})" if frames else ""
    return f"{type(e).__name__}: {str(e)[:300]}{at}"


PACKAGE = Path(__file__).resolve().parents[1]  # harness/


def _run_one(ctx: RunContext, m: Matrix, cell: Cell, tasks: list[str] | None) -> CellResult:
    images = ctx.images.get(cell.target.tag)
    if images is None or isinstance(images, ImageFailure):
        return error_cell(cell, ctx, Cause.IMAGE_UNAVAILABLE, images.error if images else "images were not prepared")
    env = cell_env(m, cell, ctx)
    choice = llm_choice(ctx.llm)
    # A deployment's own environment (env files included) holds secrets too: redacted alike.
    own = cell.mode.deployment.service.environment if cell.mode.deployment else {}
    plan = CellPlan(ctx.run_id, cell, images, env, m.connect_budget, m.app_budget,
                    secrets=secret_names({**own, **env}), tasks=list(m.tasks if tasks is None else tasks),
                    catalog=m.catalog(), llm=choice, task_budget=m.task_budget, boot_slots=ctx.boot_slots,
                    remedies=ctx.remedies, remedy_names=frozenset(ctx.remedy_names))
    result = run_cell(plan)
    if choice.real is not None:
        result.notes.append(f"tasks ran on the user's model {choice.real.model}")
    dep = cell.mode.deployment

    def rerun(change: remedies.Change, alone: bool) -> CellResult:
        moved = cell if change.mode is None else replace(cell, mode=m.mode(change.mode), origin=cell.id)
        if dep is not None and (change.extra_hosts or change.network_mode or change.also_publish or change.volumes
                                or change.republish):
            changed = dep.changed(change.extra_hosts, change.network_mode, change.also_publish, change.volumes,
                                  change.republish)
            moved = replace(moved, mode=replace(moved.mode, deployment=changed))
        env2 = {**cell_env(m, moved, ctx), **change.env}
        return run_cell(replace(plan, cell=moved, env=env2, secrets=secret_names({**own, **env2}), tasks=[],
                                alone=alone, slots_held=alone))

    def machine() -> contextlib.AbstractContextManager[object]:
        return admission.slot(plan.boot_slots, alone=True)

    # a caller's own fixes are proven by its cell (caller.py); a DockerWorkspace caller has no app to remedy
    if result.connect.direction != Direction.CALLER and cell.entrypoint != "workspace":
        result.remedies = remedies.attempt(result, cell, ctx, rerun, machine)
    key = {"LLM_API_KEY": choice.real.api_key, "LLM_BASE_URL": choice.real.base_url} if choice.real else {}
    # A task file's secrets are secret whatever their names: redacted like the key.
    declared = [os.environ[n] for t in m.task_defs for n in t.secrets if os.environ.get(n)]
    return redact_result(result, {**own, **env, **key}, declared)
