"""A matrix run as plain functions the pytest plugin calls: set up once in the controller
(matrix, daemon, sweep, images), run a cell in any worker, join the results at the end.

The controller writes `OUT/run.json`; xdist workers read it, so images are prepared once
per run, not once per worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import cleanup, docker_host, history, images, matrix, remedies
from harness.cell import CellPlan, run_cell, runtime_kwargs
from harness.errors import ImageUnavailable, InputError
from harness.images.model import ImageSet
from harness.matrix import Cell, Matrix
from harness.openhands import LlmSettings
from harness.report.render import render_all
from harness.results import CellResult, Connect, Evidence, build_run, read_cells, write_cell, write_json
from harness.secrets import redact_env, redact_result, secret_names
from harness.taskrun import LlmChoice

REAL_LLM_ENV = ("LLM_MODEL", "LLM_API_KEY")  # plus optional LLM_BASE_URL


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunContext:
    run_id: str
    out: str
    matrix_path: str
    backend: str
    app_env: dict[str, str]
    only: list[str]
    started_at: str
    host: dict[str, Any] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> ImageSet or {"error"}
    swept: str = ""
    remedies: bool = False  # rerun failed cells with the known fixes for their cause
    llm: str = "scripted"  # scripted | real (the key itself stays in the environment)

    def save(self) -> None:
        """run.json is how workers learn the run; secret values stay out of it (workers
        take --app-env from their own pytest options)."""
        write_json(Path(self.out) / "run.json", {**asdict(self), "app_env": redact_env(self.app_env)})

    @classmethod
    def load(cls, out: str) -> RunContext:
        return cls(**json.loads((Path(out) / "run.json").read_text()))


def default_out(run_id: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("reports") / f"{stamp}-{run_id[:8]}")


def llm_mode(matrix_value: str, flag: str | None) -> str:
    """scripted or real: `--llm` over the matrix's `run.llm`; auto is real when the user's
    model and key are in the environment."""
    choice = flag or matrix_value
    have = all(os.environ.get(k) for k in REAL_LLM_ENV)
    if choice == "auto":
        return "real" if have else "scripted"
    if choice == "real" and not have:
        raise InputError("--llm real: set LLM_MODEL and LLM_API_KEY (and LLM_BASE_URL for your own endpoint)")
    return choice


def llm_choice(mode: str) -> LlmChoice:
    if mode != "real":
        return LlmChoice()
    return LlmChoice(LlmSettings(os.environ["LLM_MODEL"], os.environ["LLM_API_KEY"],
                                 os.environ.get("LLM_BASE_URL", "")))


def validate(matrix_path: str, app_env: list[str], only: list[str],
             backend: str | None, llm: str | None = None) -> tuple[Matrix, dict[str, str], list[Cell]]:
    """Every input check, so bad input surfaces before anything is made (and not in a worker)."""
    m = matrix.load(matrix_path)
    if llm is not None and llm not in matrix.LLMS:
        raise InputError(f"--llm {llm}: expected one of {', '.join(matrix.LLMS)}")
    llm_mode(m.llm, llm)
    env = matrix.parse_app_env(app_env)
    cells = m.select(only)
    if backend is not None and backend not in matrix.BACKENDS:
        raise InputError(f"--backend {backend}: expected one of {', '.join(matrix.BACKENDS)}")
    for cell in cells:
        value = {**m.env, **cell.mode.env, **env}.get("SANDBOX_DOCKER_RUNTIME_KWARGS")
        if value:
            runtime_kwargs(value, {})
    return m, env, cells


def start(matrix_path: str, out: str | None, backend: str | None, app_env: list[str],
          only: list[str], remedies: bool = False, llm: str | None = None) -> tuple[RunContext, Matrix]:
    """Controller-side set-up. Raises InputError / DockerUnavailable before anything is made."""
    m, env, cells = validate(matrix_path, app_env, only, backend, llm)
    client = docker_host.client()
    run_id = os.environ.get("OH_MATRIX_RUN_ID") or uuid.uuid4().hex
    os.environ["OH_MATRIX_RUN_ID"] = run_id
    os.environ.setdefault("OH_MATRIX_OWNER_PID", str(os.getpid()))
    ctx = RunContext(run_id=run_id, out=out or default_out(run_id), matrix_path=matrix_path,
                     backend=backend or m.backend, app_env=env, only=list(only), started_at=now(),
                     remedies=remedies, llm=llm_mode(m.llm, llm))
    swept = cleanup.sweep(client)
    if swept:
        ctx.swept = swept.summary()
        print(f"[oh-matrix] swept what earlier runs left: {swept.summary()}", file=sys.stderr)
    ctx.host = docker_host.facts(client).to_dict()
    for target in {c.target for c in cells}:
        try:
            constraints = Path(target.constraints) if target.constraints else None
            ctx.images[target.tag] = images.prepare(client, target.tag, target.api, ctx.backend,
                                                    constraints).to_dict()
        except ImageUnavailable as e:
            ctx.images[target.tag] = {"error": str(e), "resolved_version": e.resolved_version}
    for stale in ("cells", "locks"):  # a reused --out: fragments of an earlier run are not this run's
        shutil.rmtree(Path(ctx.out) / stale, ignore_errors=True)
    ctx.save()
    return ctx, m


def cell_env(m: Matrix, cell: Cell, ctx: RunContext) -> dict[str, str]:
    return {**m.env, **cell.mode.env, **ctx.app_env}


def run_one(ctx: RunContext, m: Matrix, cell: Cell, tasks: list[str] | None = None) -> CellResult:
    """Run one cell (any process): connect, then `tasks` (default: the matrix's) if it
    connected; write its fragment."""
    entry = ctx.images.get(cell.target.tag)
    if entry is None or "error" in entry:
        result = error_cell(cell, ctx, "image-unavailable", (entry or {}).get("error", "images were not prepared"))
    else:
        imgs = ImageSet(**entry)
        env = cell_env(m, cell, ctx)
        choice = llm_choice(ctx.llm)
        plan = CellPlan(ctx.run_id, cell, imgs, env, m.connect_budget, m.app_budget,
                        secrets=secret_names(env), tasks=list(m.tasks if tasks is None else tasks),
                        llm=choice, task_budget=m.task_budget)
        result = run_cell(plan)
        if choice.real is not None:
            result.notes.append(f"tasks ran on the user's model {choice.real.model}")
        if ctx.remedies and result.connect.verdict == "fail":
            fix_ctx = remedies.Context(gateway=ctx.host.get("bridge_gateway"))

            def rerun(extra: dict[str, str], mode: str | None) -> CellResult:
                moved = cell if mode is None else replace(cell, mode=m.mode(mode), origin=cell.id)
                env2 = {**cell_env(m, moved, ctx), **extra}
                return run_cell(replace(plan, cell=moved, env=env2, secrets=secret_names(env2), tasks=[]))

            result.remedies = remedies.search(result, fix_ctx, rerun)
        key = {"LLM_API_KEY": choice.real.api_key} if choice.real else {}
        redact_result(result, {**env, **key})
    write_cell(Path(ctx.out), result)
    return result


def error_cell(cell: Cell, ctx: RunContext, cause: str, why: str) -> CellResult:
    """A cell the harness could not run: no images, or a worker that died mid-cell."""
    return CellResult(id=cell.id, tag=cell.target.tag, mode=cell.mode.name, api=cell.target.api,
                      entrypoint=cell.entrypoint,
                      resolved_version=(ctx.images.get(cell.target.tag) or {}).get("resolved_version"),
                      backend=ctx.backend, connect=Connect("error", cause, evidence=[Evidence("harness", why)]))


LOST_WORKER = ("the worker running this cell died before it wrote a result (killed or crashed); "
               "what it started was swept at the end of the run")


def finish(ctx: RunContext, m: Matrix, reported: set[str] | None = None) -> dict[str, Any]:
    """Join the fragments into results.json (`reported`: cells whose tests ran; one of them
    without a fragment lost its worker); sweep what this run left."""
    out = Path(ctx.out)
    cells = read_cells(out)
    have = {c["id"] for c in cells}
    cells += [error_cell(c, ctx, "harness-error", LOST_WORKER).to_dict()
              for c in m.select(ctx.only) if c.id in (reported or set()) and c.id not in have]
    order = [c.id for c in m.select(ctx.only)]
    run = build_run(ctx.run_id, ctx.started_at, now(), ctx.backend, ctx.host, cells, order,
                    {"matrix": ctx.matrix_path, "app_env": redact_env(ctx.app_env), "images": ctx.images,
                     "swept_at_start": ctx.swept})
    past = out.parent / "history.jsonl"
    run["changes"] = history.record(run, past)
    run["trends"] = history.trends(history.load(past), history.host_key(run))
    render_all(run, out)  # sets run["recommendation"], written into results.json next
    write_json(out / "results.json", run)
    try:
        left = cleanup.sweep(docker_host.client(), ctx.run_id)
        if left:  # a cell's own teardown removes its things: these lost their worker
            print(f"[oh-matrix] swept what this run's lost workers left: {left.summary()} "
                  f"({', '.join(left.containers + left.networks)})", file=sys.stderr)
    except Exception as e:  # the results are written; a failed final sweep must not hide them
        print(f"[oh-matrix] final sweep failed: {e}", file=sys.stderr)
    return run
