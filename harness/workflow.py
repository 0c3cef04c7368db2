"""A run, as a straight line of steps (docs/architecture.md):

    inputs -> docker -> context -> sweep -> images -> cells (pytest) -> collect
           -> history -> judge -> recommend -> write -> render -> final sweep -> exit code

Each step returns what it makes and the run threads it to the next: `prepare` walks the
steps before the cells (Inputs, then Prepared), `finish` the ones after them (a Finished
run, its gate decided once), and `run` (`oh-matrix run`) walks both around a cells step;
under plain `pytest --oh-matrix`, the plugin calls `prepare` in pytest_configure and `finish`
in pytest_sessionfinish, around pytest's own session. A step ends the run by raising
(bad input, no Docker, an interrupt), or, for the cells, by the pytest outcome it found.
This module is also the one place where outcomes become exit codes (docs/exit-codes.md).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import commit, endpoint, generations, images, knobs, matrix, remedies, version
from harness.cells import admission
from harness.cells.plan import runtime_kwargs
from harness.cells.runner import LOST_WORKER, error_cell
from harness.context import RunContext
from harness.deployments import commands
from harness.errors import DockerUnavailable, HarnessError, InputError, OutputError
from harness.host import cleanup, docker_host
from harness.matrix import Cell, Matrix
from harness.model import (
    Cause,
    CellResult,
    Change,
    Expected,
    Host,
    ImageFailure,
    ImageSet,
    Recommendation,
    RemedyTry,
    Run,
    Upgrade,
    Verdict,
)
from harness.remedies import callers as caller_fixes
from harness.results import history, upgrade
from harness.results.recommend import recommend
from harness.secrets import redact_env, remember, scrub

# Exit codes of `oh-matrix` (docs/exit-codes.md).
EXIT_OK = 0  # no cell surprised (--gate all-pass: every cell passed; regressions: nothing regressed)
EXIT_FAILED = 1  # a cell surprised (or did not pass, or regressed: per the gate), or a report could not be written
EXIT_INPUT = 2  # bad input: a matrix or task file, a flag, a filter, pytest arguments
EXIT_DOCKER = 3  # Docker is not usable
EXIT_INTERNAL = 4  # pytest or the harness itself broke (a bug, not a verdict)
EXIT_NOTHING = 5  # no cell was selected (e.g. -k matched nothing)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM / SIGHUP

REAL_LLM_ENV = ("LLM_MODEL", "LLM_API_KEY")  # plus optional LLM_BASE_URL


def exit_code(e: BaseException) -> int:
    """The exit code of a run that ended in this exception."""
    if isinstance(e, InputError):
        return EXIT_INPUT
    if isinstance(e, DockerUnavailable):
        return EXIT_DOCKER
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(e, HarnessError):  # an output error, an image error outside a cell
        return EXIT_FAILED
    return EXIT_INTERNAL


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Options:
    """What the user asked for, from `oh-matrix run` flags or pytest options."""

    matrix: str
    out: str | None = None
    backend: str | None = None
    app_env: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    remedies: bool = False
    remedy: list[str] = field(default_factory=list)  # with remedies: only these fixes
    llm: str | None = None
    gate: str = "surprises"  # options.GATES
    upgrade_from: str | None = None  # the release deployed today (else the matrix's run.upgrade_from)
    workers: int = 1
    k: str | None = None
    pytest_args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Inputs:
    """What the inputs step read and checked: the flags, the matrix, the cells it selects, --app-env."""

    options: Options
    matrix: Matrix
    cells: list[Cell]
    app_env: dict[str, str]


@dataclass(frozen=True)
class Prepared:
    """What the steps before the cells made: the inputs, the daemon's client and the run's
    context (its host, swept leftovers and images), which the cells' processes share."""

    inputs: Inputs
    client: Any
    ctx: RunContext


@dataclass
class Found:
    """What the cells step found: each cell's result as its report arrived, the cells whose
    tests reported (a dead worker's too), and pytest's exit code; `stop`, the exit code of a
    pytest outcome that ends the run before its results (PYTEST_CODES)."""

    results: dict[str, CellResult] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)
    pytest_code: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class Finished:
    """A run the steps after the cells wrote: the results, whether the final sweep reached
    the daemon (None: it failed otherwise, or did not run), the gate's answer (decided once,
    by `finish`), and the write that failed, if one did (a full disk: the steps stopped there)."""

    run: Run
    swept_at_end: bool | None
    gate: int  # EXIT_OK or EXIT_FAILED: the --gate's answer (outcome)
    lines: list[str]  # the same answer in words (gate_lines)
    daemon_gone: str | None  # the one line of a run whose daemon went away
    error: str | None = None  # an OutputError's message: results or reports not (all) written

    @property
    def code(self) -> int:
        """`oh-matrix run`'s exit code: a write that failed (1), the daemon gone (3), else the gate's."""
        if self.error is not None:
            return EXIT_FAILED
        return EXIT_DOCKER if self.daemon_gone is not None else self.gate


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


# -- before the cells ---------------------------------------------------------------------------

def inputs(o: Options) -> Inputs:
    """Every input check, so bad input surfaces before anything is made."""
    m = matrix.load(o.matrix, run_command=commands.run)
    knobs.check_all()
    check_writable(o.out or str(REPORTS), "--out")
    past = Path(o.out or default_out("-")).parent / "history.jsonl"  # the history step's, checked now
    if why := history.problem(past, append=True):
        raise InputError(f"--out {o.out or REPORTS}: the history it appends to: {why}")
    if o.llm is not None and o.llm not in matrix.LLMS:
        raise InputError(f"--llm {o.llm}: expected one of {', '.join(matrix.LLMS)}")
    if o.backend is not None and o.backend not in matrix.BACKENDS:
        raise InputError(f"--backend {o.backend}: expected one of {', '.join(matrix.BACKENDS)}")
    llm_mode(m.llm, o.llm)
    if o.remedy and not o.remedies:
        raise InputError(f"--remedy {o.remedy[0]}: only with --remedies")
    known = [*remedies.REMEDIES, *caller_fixes.NAMES]
    if unknown := [n for n in o.remedy if n not in known]:
        raise InputError(f"--remedy {unknown[0]}: no such remedy (known: {', '.join(known)})")
    for t in m.task_defs:  # a task file's secrets come from the harness's own environment
        for j, name in enumerate(t.secrets):
            if name not in os.environ:
                raise InputError(f"{t.catalog}: task {t.name}: secrets[{j}]: {name} is not set in the environment "
                                 "(its value goes to the task's setup and check)")
            remember(name, os.environ[name])  # what the controller prints is scrubbed of it too
    if llm_mode(m.llm, o.llm) == "real":
        for name in ("LLM_API_KEY", "LLM_BASE_URL"):
            remember(name, os.environ.get(name, ""))
    app_env = matrix.parse_app_env(o.app_env)
    cells = m.select(o.only)
    before = o.upgrade_from or m.upgrade_from
    if o.upgrade_from and o.upgrade_from not in [t.tag for t in m.targets]:
        raise InputError(f"--upgrade-from {o.upgrade_from}: not a target of {m.path} "
                         f"({', '.join(t.tag for t in m.targets)})")
    if before:
        matrix.upgrade_target(m, before)
    for cell in cells:  # a runtime-kwargs setting the release would not parse: bad input, now
        setting = generations.get(cell.target.api).label_env
        value = {**m.env, **cell.mode.env, **app_env}.get(setting) if setting else None
        if setting and value:
            runtime_kwargs(value, {}, setting)
    return Inputs(o, m, cells, app_env)


def check_writable(folder: str, what: str) -> None:
    """The report folder can be made and written: checked before the run, not at its end.
    The nearest folder that exists must be a folder this process can write a file in."""
    path = Path(folder).absolute()
    probe = next((p for p in (path, *path.parents) if p.exists()), None)
    if probe is None:
        return
    if not probe.is_dir():
        raise InputError(f"{what} {folder}: {probe} is not a folder")
    try:  # a real write: permission bits say nothing for root, a read-only mount or /proc
        with tempfile.TemporaryFile(dir=probe, prefix=".oh-matrix-probe-"):
            pass
    except OSError as e:
        raise InputError(f"{what} {folder}: cannot write in {probe}: {e.strerror or e}") from None


def docker(i: Inputs) -> Any:
    """The daemon's checked client."""
    client = docker_host.client()  # DockerUnavailable: one line, exit 3
    if (why := docker_host.unusable_remote()) is not None:
        raise DockerUnavailable(why)
    remote_binds(i.matrix)
    return client


def remote_binds(m: Matrix) -> None:
    """A deployment's host folder is a temporary folder of the cell's, made on this machine: a
    remote daemon would mount its own host's path of that name, which the harness cannot
    make, fill or remove. Refused before anything is built, naming the deployment and mount."""
    if not endpoint.remote():
        return
    for d in (c.deployment for c in m.modes if c.deployment is not None):
        for v in d.service.volumes:
            if v.kind == "bind" and v.source and not v.is_socket:
                raise InputError(f"{d.origin}: volume {v.source}:{v.target}: a host folder cannot be placed "
                                 f"for a cell on a remote daemon ({os.environ.get('DOCKER_HOST')}): the "
                                 "harness makes it on this machine, and the daemon would mount its own "
                                 "host's path; use a named volume, or run oh-matrix on the daemon's host")


REPORTS = Path("reports")  # where run folders go unless --out names one


def default_out(run_id: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(REPORTS / f"{stamp}-{run_id[:8]}")


def context(i: Inputs) -> RunContext:
    """The run's id, folder and flags, as every process of the run shares them."""
    o, m = i.options, i.matrix
    run_id = os.environ.get("OH_MATRIX_RUN_ID") or uuid.uuid4().hex
    os.environ["OH_MATRIX_RUN_ID"] = run_id
    os.environ.setdefault("OH_MATRIX_OWNER_PID", str(os.getpid()))  # owner of what the run labels
    slots, why = admission.slots()
    ctx = RunContext(run_id=run_id, out=o.out or default_out(run_id), matrix_path=m.path, matrix_text=m.text,
                     task_files=m.files,
                     backend=o.backend or m.backend, app_env=i.app_env, only=list(o.only), started_at=now(),
                     remedies=o.remedies, remedy_names=list(o.remedy), llm=llm_mode(m.llm, o.llm),
                     boot_slots=slots, boot_slots_why=why)
    print(f"[oh-matrix] boots admitted at once: {slots} ({why})", file=sys.stderr)
    return ctx


def sweep(client: Any) -> tuple[str, Host]:
    """What dead runs left, removed (its summary, "" for nothing), and the daemon's facts."""
    swept = cleanup.sweep(client)
    if swept:
        print(f"[oh-matrix] swept what earlier runs left: {swept.summary()}", file=sys.stderr)
    return (swept.summary() if swept else ""), Host.model_validate(docker_host.facts(client).to_dict())


def prepare_images(client: Any, i: Inputs, ctx: RunContext) -> dict[str, ImageSet | ImageFailure]:
    """Every target's images, the releases overlapping (images.prepare_all)."""
    chosen = list(dict.fromkeys(c.target for c in i.cells))
    targets = [(t.tag, t.api, Path(t.constraints) if t.constraints else None) for t in chosen if not t.image]
    got: dict[str, ImageSet | images.ImageUnavailable] = dict(images.prepare_all(client, targets, ctx.backend))
    for t in chosen:
        if t.image and t.deployment:  # a deployment's own image, with the runtime its settings name
            choice = i.matrix.mode(t.deployment)
            assert choice.deployment is not None, "an own image's target names its deployment"
            environment = {**choice.deployment.service.environment, **i.matrix.env, **choice.env, **ctx.app_env}
            try:
                got[t.tag] = images.prepare_own(client, t.tag, t.api, t.image, environment, ctx.backend)
            except images.ImageUnavailable as e:
                got[t.tag] = e
    clis = {c.target.tag for c in i.cells if c.entrypoint == "cli"}
    natives = {c.target.tag for c in i.cells if getattr(c.mode.spec, "host_process", False)}
    workspaces = {c.target.tag for c in i.cells if c.entrypoint == "workspace"}
    made: dict[str, ImageSet | ImageFailure] = {}
    for tag, one in got.items():
        if isinstance(one, ImageSet) and tag in clis:
            one = with_cli(client, one)
        if isinstance(one, ImageSet) and tag in natives:
            one = with_native(one)
        if isinstance(one, ImageSet) and tag in workspaces:
            one = with_workspace(client, one)
        made[tag] = (one if isinstance(one, ImageSet)
                     else ImageFailure(error=str(one), resolved_version=one.resolved_version))
    return made


def with_cli(client: Any, one: ImageSet) -> ImageSet:
    """The target's images with the CLI release paired with it (images/cli.py), built unless
    that release has no headless mode the cell can run (the cell then says why)."""
    from harness.images import cli
    from harness.openhands.cli import headless_lack

    try:
        pair = cli.paired(one.resolved_version)
    except images.ImageUnavailable as e:  # the index lists no CLI
        return one.model_copy(update={"cli_error": str(e)})
    update: dict[str, Any] = {"cli_version": pair.cli, "cli_pair": pair.why}
    if headless_lack(pair.cli) is None:
        try:
            built = cli.prepare_cli(client, pair.cli)
            update |= {"cli_image": built.ref, "notes": [*one.notes, *built.notes]}
        except images.ImageUnavailable as e:  # a build that failed too (BuildFailed is one)
            update["cli_error"] = str(e)
    return one.model_copy(update=update)


def with_workspace(client: Any, one: ImageSet) -> ImageSet:
    """The target's images with a docker-workspace caller's image (images/workspace.py), or why not."""
    from harness.images import workspace

    if one.agent_server_image is None:
        return one.model_copy(update={"workspace_error": f"{one.tag} has no agent-server image here for "
                                                         "DockerWorkspace to start"})
    try:
        return one.model_copy(update={"workspace_image": workspace.caller_image(client, one.agent_server_image)})
    except images.ImageUnavailable as e:
        return one.model_copy(update={"workspace_error": str(e).splitlines()[0]})


def with_native(one: ImageSet, python312: str | None = None) -> ImageSet:
    """The target's images with the native mode's install of its release (its generation's
    native_install: none for a generation without one, whose native cells say so)."""
    gen = generations.get(one.api)
    if gen.native_install is None:
        return one
    try:
        return one.model_copy(update={"native": gen.load(gen.native_install)(one.resolved_version, python312)})
    except images.ImageUnavailable as e:
        return one.model_copy(update={"native_error": str(e).splitlines()[0]})


def prepare(o: Options, selection: Callable[[Inputs], None] | None = None) -> Prepared:
    """The steps before the cells, each given what the ones before it made. `selection`
    checks, right after the inputs, what the cells' run will select (run/selection.py)."""
    i = inputs(o)
    if selection is not None:
        selection(i)
    client = docker(i)
    ctx = context(i)
    ctx.swept, ctx.host = sweep(client)
    ctx.images = prepare_images(client, i, ctx)
    return Prepared(i, client, ctx)


# -- the cells ---------------------------------------------------------------------------------
# The matrix as a pytest run is run/cells.py's run_cells: `oh-matrix run` hands it to run() below.

Cells = Callable[[Prepared], Found]

PYTEST_CODES = {  # pytest's own outcomes that end a run before its results (docs/exit-codes.md)
    2: EXIT_INTERRUPTED,  # INTERRUPTED
    3: EXIT_INTERNAL,  # INTERNAL_ERROR: not "Docker unusable"
    4: EXIT_INPUT,  # USAGE_ERROR: pytest printed which argument
    5: EXIT_NOTHING,  # NO_TESTS_COLLECTED
}


# -- after the cells --------------------------------------------------------------------------------
# `collect` makes the Run; the steps after it each add their part to it (the history, the
# judgement, the decisions) or write it; `finish` threads them and decides the gate once.

def collect(p: Prepared, found: Found) -> Run:
    """The run's cells in matrix order; a cell whose tests ran but whose result never came
    back lost its worker."""
    ctx, cells = p.ctx, p.inputs.cells
    lost = [error_cell(c, ctx, Cause.HARNESS_ERROR, LOST_WORKER) for c in cells
            if c.id in found.reported and c.id not in found.results]
    results = {**found.results, **{c.id: c for c in lost}}
    order = [c.id for c in cells]
    return Run(run_id=ctx.run_id, started_at=ctx.started_at, finished_at=now(), backend=ctx.backend,
               host=ctx.host, cells=[results[i] for i in order if i in results], matrix=ctx.matrix_path,
               app_env=redact_env(ctx.app_env), images=ctx.images, swept_at_start=ctx.swept,
               boot_slots=ctx.boot_slots, boot_slots_why=ctx.boot_slots_why,
               oh_matrix_version=version(), oh_matrix_commit=commit())


def record_history(run: Run, out: str) -> None:
    """The run's line in `history.jsonl` beside its folder, and what the history says of it:
    changes since the last run here, trends, each cell's nights."""
    past = Path(out).parent / "history.jsonl"
    run.changes = history.record(run, past)
    entries, here = history.load(past), history.host_key(run.host)
    run.trends = history.trends(entries, here)
    found = history.nights(entries, here)
    for c in run.cells:  # this run is the last line: every cell has at least its own night
        c.nights = found.get(c.id, [])


def judge(run: Run, m: Matrix, cells: Sequence[Cell]) -> None:
    """Each cell against what the matrix expects of it on this host, and against the last run
    on this host: a cell that differs from either surprised (the default gate's question)."""
    chosen = {c.id: c for c in cells}
    regressed = {ch.cell: ch for ch in run.changes.regressions}
    for c in run.cells:
        cell = chosen.get(c.id)
        c.expected = m.expected(cell, run.host) if cell is not None else Expected()
        said = [w for w in (c.expected.surprise(c), regression_text(regressed.get(c.id))) if w]
        c.surprise = "; ".join(said) or None


def regression_text(ch: Change | None) -> str | None:
    if ch is None:
        return None
    return f"regressed: {ch.before.verdict} in {ch.since[:8]} on this host, now {ch.now.verdict}"


def decide(run: Run, i: Inputs) -> tuple[Recommendation, Upgrade | None]:
    """What to deploy, and (when asked) the move from the release deployed today."""
    before = i.options.upgrade_from or i.matrix.upgrade_from
    moved = upgrade.compare(run.cells, before, matrix.upgrade_target(i.matrix, before)) if before else None
    return recommend(run.cells), moved


def write(run: Run, out: str) -> None:
    from harness.output import write_run, write_text_atomic

    folder = Path(out)
    write_run(folder, run)
    for _cell, remedy, path in fixes(run):  # each proven fix to a user's deployment, as a file to apply
        write_text_atomic(folder / path, remedy.fix or "")


def fixes(run: Run) -> list[tuple[CellResult, RemedyTry, str]]:
    """(cell, remedy, path in the run folder) of every remedy that passed with a fix to the
    user's deployment: `fixes/CELL-REMEDY.diff` for a compose file, `.sh` for a docker run line."""
    out = []
    for c in run.cells:
        for r in c.remedies:
            if r.fix:
                suffix = "diff" if r.fix.startswith("---") else "sh"
                out.append((c, r, f"fixes/{c.id}-{r.name}.{suffix}"))
    return out


def render(run: Run, out: str) -> None:
    from harness.report.render import render_all

    render_all(run, Path(out))


def final_sweep(run_id: str) -> bool | None:
    """Anything of this run a dead worker left: True when swept, False when the daemon is
    gone, None when the sweep failed otherwise (said on one line)."""
    try:
        left = cleanup.sweep(docker_host.client(), run_id)
        if left:  # a cell's own teardown removes its things: these lost their worker or their daemon
            print(f"[oh-matrix] swept what this run's lost workers or daemon left: {left.summary()} "
                  f"({', '.join(left.containers + left.networks)})", file=sys.stderr)
        return True
    except Exception as e:  # the results are written; a failed final sweep must not hide them
        if docker_host.lost(e) is not None:  # said once, by the exit line (daemon_gone)
            return False
        print(f"[oh-matrix] final sweep failed: {e}", file=sys.stderr)
        return None


def daemon_gone(run: Run, swept_at_end: bool | None) -> str | None:
    """The one line of a run whose daemon went away (exit 3): its cells that say so, and where
    what it left goes; None when the daemon stayed."""
    lost = [c.id for c in run.cells if c.connect.cause == Cause.DAEMON_LOST]
    if not lost and swept_at_end is not False:
        return None
    left = ("what they left was swept at the end of the run, once it answered again" if swept_at_end else
            "what the run left is removed by the next run's first sweep once it answers again (or oh-matrix clean)")
    cells = f"{len(lost)} cell(s) error daemon-lost ({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''})" \
        if lost else "after the cells"
    return f"the Docker daemon at {docker_host.endpoint_name()} went away during the run: {cells}; {left}"


def finish(p: Prepared, found: Found) -> Finished:
    """The steps after the cells, each given what the ones before it made, and the gate's
    answer, decided here once for both front doors. An OutputError (a full disk) stops the
    steps where it happened, before the final sweep; each front door says it its own way."""
    i, out, gate = p.inputs, p.ctx.out, p.inputs.options.gate
    run = collect(p, found)
    try:
        record_history(run, out)
        judge(run, i.matrix, i.cells)
        run.recommendation, run.upgrade = decide(run, i)
        write(run, out)
        render(run, out)
    except OutputError as e:
        return Finished(run, None, outcome(run, gate, found.pytest_code), gate_lines(run, gate, found.pytest_code),
                        None, error=str(e))
    swept = final_sweep(p.ctx.run_id)
    return Finished(run, swept, outcome(run, gate, found.pytest_code), gate_lines(run, gate, found.pytest_code),
                    daemon_gone(run, swept))


def surprises(run: Run) -> list[tuple[str, str]]:
    """(cell, how) for each cell that surprised; a cell not judged (a run that skipped the
    judge step) is held to a pass."""
    said = ((c.id, c.surprise if c.expected is not None else Expected().surprise(c)) for c in run.cells)
    return [(cid, how) for cid, how in said if how]


def outcome(run: Run, gate: str = "surprises", pytest_code: int | None = None) -> int:
    """0 when no cell surprised (--gate all-pass: every cell and task passed; --gate
    regressions: nothing regressed). A history it cannot read fails the gates that compare
    with it: a gate that cannot compare is not green."""
    if gate == "regressions":
        return EXIT_FAILED if run.changes.regressions or run.changes.unreadable else EXIT_OK
    if gate in ("all-pass", "failures"):
        ok = all(c.passed or c.connect.verdict == Verdict.SKIP for c in run.cells)
        return EXIT_OK if ok and pytest_code in (0, None) else EXIT_FAILED
    return EXIT_FAILED if surprises(run) or run.changes.unreadable else EXIT_OK


def gate_lines(run: Run, gate: str = "surprises", pytest_code: int | None = None) -> list[str]:
    """The gate's answer in words, last in the terminal: the exit code and why, the cells
    that surprised and how, and the cells that failed as the matrix expects on this host."""
    found = surprises(run)
    if outcome(run, gate, pytest_code) == EXIT_OK:
        lines = [f"exit 0 (--gate {gate}): the run went as expected"]
    elif gate in ("all-pass", "failures"):
        lines = [f"exit 1 (--gate {gate}): not every cell passed"]
    elif found and gate == "surprises":
        lines = [f"exit 1 (--gate {gate}): {len(found)} cell(s) surprised:"]
        lines += [f"  {cid}: {how}" for cid, how in found]
    elif run.changes.regressions:
        lines = [f"exit 1 (--gate {gate}): {len(run.changes.regressions)} cell(s) regressed since the last run here"]
    else:
        lines = [f"exit 1 (--gate {gate}): {len(run.changes.unreadable)} history line(s) unreadable, "
                 "so a regression cannot be ruled out"]
    return lines + expected_lines(run)


def expected_lines(run: Run) -> list[str]:
    """`failed as expected on this host: 0.61-bridge, 0.62-bridge: <reason>`, one line per reason."""
    from harness.report.markdown import as_expected

    return [f"failed as expected on this host: {', '.join(ids)}: {why}" for why, ids in as_expected(run.cells).items()]


class Stop(Exception):  # not an error: a step's way to end the run, having said why
    """A step ends the run with this exit code (a selection of nothing: 5)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


Report = Callable[[Prepared, Finished], None]


def run(options: Options, cells: Cells, report: Report | None = None,
        selection: Callable[[Inputs], None] | None = None) -> int:
    """`oh-matrix run`: every step, then the exit code. `cells` runs the cells (the pytest
    run, run/cells.py); `selection` checks right after the inputs what the cells' run will
    select (-k, pytest's arguments: run/selection.py); `report` prints the end of the run."""
    try:
        p = prepare(options, selection)
        found = cells(p)
        if found.stop not in (None, EXIT_INTERRUPTED):
            return found.stop
        done = finish(p, found)  # an interrupted run still writes what it found
        if done.error is not None:
            print(f"oh-matrix: {scrub(done.error)}", file=sys.stderr)
            return done.code
        if found.stop is not None:
            return found.stop
    except Stop as e:
        return e.code
    except (HarnessError, KeyboardInterrupt) as e:
        print(f"oh-matrix: {scrub(str(e))}" if str(e) else "oh-matrix: interrupted", file=sys.stderr)
        return exit_code(e)
    if report is not None:
        report(p, done)
    if done.daemon_gone is not None:
        print(f"oh-matrix: {done.daemon_gone}", file=sys.stderr)
    return done.code
