"""The headless entry point as a matrix axis: the same release and mode, but the app image
runs `python -m openhands.core.main -t TASK` (V0, openhands/core/main.py at 0.62.0), as
the original report's third approach did, configured by env with confirmation off.

It has no API: one process per task, which starts its own runtime through the same
DockerRuntime and exits when the agent is done. So the first process also decides the
connect verdict (the runtime is ready when the process logs `Runtime is ready.`,
OpenHands' docker_runtime.py), with the same probes and rules as the API cells; each process's
actions come from its saved trajectory, and its effect is read from its runtime, which
`SANDBOX_KEEP_RUNTIME_ALIVE=true` keeps for the check (the harness removes it after).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from harness.cells.cell import CellCore
from harness.cells.diagnosis import Decision
from harness.cells.plan import NO_LLM, CellPlan
from harness.cells.watch import RulesWatch
from harness.deployments.spec import with_task
from harness.errors import TaskSetupError
from harness.host import cleanup
from harness.host.containers import free_port, tail
from harness.model import Cause, Connect, TaskResult, Verdict, strip_ansi
from harness.modes import AppLaunch
from harness.openhands import LlmSettings, RuntimeState, Turn, rules_for
from harness.secrets import redact_env
from harness.tasks.taskrun import TaskKit

READY_LINE = "Runtime is ready."
TRAJECTORY = "/tmp/oh-matrix-trajectory.json"
NO_TASK = "Say hello."
MAX_ITERATIONS = "30"


# What the harness's reading of a task needs, over a user's own line's settings: its LLM (the
# API cells set theirs through the app's settings alike), the runtime kept for the effect
# check, and the trajectory it reads the agent's actions from.
INSTRUMENT = ("LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL", "SANDBOX_KEEP_RUNTIME_ALIVE", "SAVE_TRAJECTORY_PATH")


def headless_env(llm: LlmSettings) -> dict[str, str]:
    """How openhands.core.main is configured without a config.toml (core/config/utils.py
    reads these names)."""
    return {"LLM_MODEL": llm.model, "LLM_API_KEY": llm.api_key, "LLM_BASE_URL": llm.base_url,
            "SECURITY_CONFIRMATION_MODE": "false", "SANDBOX_KEEP_RUNTIME_ALIVE": "true",
            "SAVE_TRAJECTORY_PATH": TRAJECTORY}


class HeadlessWatch(RulesWatch):
    """The connect watch for one process: its state is its log, its runtime the one it made
    (named by a hash OpenHands makes, found by the cell label it passes through). The
    generation's rules say where the process reaches that runtime; it has no API to call."""

    def __init__(self, cell: HeadlessCell, app: Container) -> None:
        super().__init__(rules_for(cell.gen), lambda: cell.app.app_env)
        self.cell, self.app = cell, app

    def runtime(self) -> Container | None:
        c, launcher = self.cell, self.cell.app
        if launcher.runtime_name:
            return launcher.container(launcher.runtime_name)
        for found in c.client.containers.list(all=True, filters={"label": f"{cleanup.CELL_LABEL}={c.plan.cell.id}"}):
            if (found.name.startswith(c.gen.runtime_prefix) and found.labels.get(cleanup.RUN_LABEL) == c.plan.run_id
                    and found.name not in c.seen):
                launcher.runtime_name = c.result.runtime_container = found.name
                return found
        return None

    def state(self) -> RuntimeState:
        ready = READY_LINE in strip_ansi(tail(self.app, 400))
        return RuntimeState(ready=ready, status="runtime ready" if ready else "starting the runtime")

    def callbacks(self, runtime: Container) -> list[tuple[str, str]]:
        return []  # a headless process has no webhook of an app server to be called at

    def callback_story(self, runtime: Container) -> list[str]:
        return []

    def runtime_running(self, runtime: Container) -> None:
        self.cell.prepare(runtime)


class HeadlessCell(CellCore):
    def __init__(self, plan: CellPlan) -> None:
        super().__init__(plan)
        self.kit: TaskKit | None = None
        self.seen: set[str] = set()  # runtimes of earlier processes (each is removed after its task)
        self.current: str | None = None  # the task of the running process
        self.prepared = False  # its runtime has what the task needs
        self.read_turn: Callable[[list[dict[str, Any]], str | None], Turn] | None = None  # the generation's reader
        self.prepare_error: str | None = None

    def prepare(self, runtime: Container | None) -> str | None:
        """What a task needs in its runtime (a seeded file, the git server), put there as
        soon as this process's runtime runs: the process gives the agent its task at once.
        Returns why that failed, if it did."""
        if self.prepared or not (self.current and self.kit and runtime):
            return self.prepare_error
        self.prepared = True
        try:
            self.kit.prepare(self.current, runtime)
        except (DockerException, TimeoutError, TaskSetupError) as e:
            self.prepare_error = f"could not prepare the task in the runtime: {str(e)[:300]}"
        return self.prepare_error

    def body(self) -> None:
        p = self.plan
        if self.gen.headless_skip or not self.gen.trajectory_reader:
            reason = self.gen.headless_skip or f"{self.gen.name} names no reader of a saved trajectory"
            self.result.connect = Connect(verdict=Verdict.SKIP, reason=reason)
            return
        self.read_turn = self.gen.load(self.gen.trajectory_reader)
        runner = None
        if p.tasks:
            self.kit = runner = TaskKit(self.resources, self.gen, p.images.app_image, self.resources.name, p.tasks,
                                        p.llm, p.task_budget, free_port(), free_port(), catalog=p.catalog,
                                        images=p.images)
        results: list[TaskResult] = []
        # A task this cell cannot run is a skip, with no process; the first process started
        # decides connect (with no task at all when every one is skipped).
        skips = {n: why for n in p.tasks if runner and (why := runner.skip_reason(n))}
        runnable: list[str | None] = [n for n in p.tasks if n not in skips] or [None]
        for i, name in enumerate(runnable):
            with contextlib.ExitStack() as process:
                result = self._process(name, first=i == 0, process=process)
            if result is not None:
                results.append(result)
            if self.result.connect.verdict != Verdict.PASS:
                break  # the entry point cannot reach its runtime: the rest would say the same
        if runner and self.result.connect.verdict == Verdict.PASS:
            done = {r.name: r for r in results}
            done |= {n: runner.result(n, Verdict.SKIP, detail=why) for n, why in skips.items()}
            results = [done[n] for n in p.tasks if n in done]
        self.result.tasks = results

    def _process(self, name: str | None, first: bool, process: contextlib.ExitStack) -> TaskResult | None:
        """One `openhands.core.main -t` process: start, watch its runtime come up (the first
        one decides connect), wait for it to exit, check the task's effect. Everything it
        made goes when `process` closes: sidecars, the app, then its runtime."""
        p, runner = self.plan, self.kit
        self.current, self.prepared, self.prepare_error = name, False, None
        process.callback(self._end_process)
        prompt = runner.message(name) if name and runner else NO_TASK
        llm = runner.settings() if runner else NO_LLM
        shown = self.result.docker_run, self.result.app_env
        launch = self.app.launch()
        if p.cell.mode.deployment is not None:
            launch = self._as_written(launch, p.cell.mode.deployment.service.command or (), prompt, llm, first)
        else:
            launch = replace(launch, env={**headless_env(llm), **launch.env},
                             headless=["python", "-m", "openhands.core.main", "-t", prompt, "-i", MAX_ITERATIONS])
        if first:  # the command a person would type, for the first task
            # The scripted LLM's address means nothing to a person: their model goes there.
            mine = {"LLM_API_KEY"} if p.llm.real else {"LLM_API_KEY", "LLM_BASE_URL", "LLM_MODEL"}
            self.result.docker_run = launch.docker_run(p.secrets | mine)
            self.result.app_env = redact_env(launch.env)
        else:
            self.result.docker_run, self.result.app_env = shown
        t0 = time.monotonic()
        try:
            with self.booting() as clock:  # the process's boot, up to its connect verdict
                app = self.app.start(launch, stack=process)
                if runner:
                    process.callback(runner.close)  # the sidecars, before the app whose namespace the LLM shares
                    runner.start_llm(str(app.id))
                self.conversation_at = time.time()
                self.watch(HeadlessWatch(self, app), app, clock)
            if not first and self.result.connect.verdict != Verdict.PASS and name and runner:
                return runner.result(name, Verdict.ERROR,
                                     detail=f"this process's runtime did not connect: {self.result.connect.cause}")
            if name is None or runner is None or self.result.connect.verdict != Verdict.PASS:
                return None
            problem = self.prepare(self.app.container(self.app.runtime_name))  # the watch may have decided first
            if problem:
                return runner.result(name, Verdict.ERROR, detail=problem)
            return self._finish(name, app, runner, t0)
        except (DockerException, TimeoutError) as e:
            if first and self.result.connect.verdict == Verdict.SKIP:
                self.decide(Decision(Verdict.ERROR, Cause.HARNESS_ERROR, f"Docker: {str(e)[:300]}"), None)
            return runner.result(name, Verdict.ERROR, detail=str(e)[:300]) if name and runner else None

    def _as_written(self, launch: AppLaunch, command: tuple[str, ...], prompt: str, llm: LlmSettings,
                    first: bool) -> AppLaunch:
        """A user's headless line runs as they wrote it, with the harness's task in place of
        theirs and the settings the harness reads its tasks by placed over theirs (never in
        the line shown); each said in the cell's notes."""
        argv, task_said = with_task(command, prompt)
        ours = {k: v for k, v in headless_env(llm).items() if k in INSTRUMENT}
        below = {k: v for k, v in headless_env(llm).items() if k not in INSTRUMENT and k not in launch.env}
        if first:
            self.result.notes += [task_said, f"set by the harness to run and read its tasks: {', '.join(ours)}"
                                  + (f"; and, as you set none: {', '.join(below)}" if below else "")]
        return replace(launch, env={**below, **launch.env}, moved_env={**launch.moved_env, **ours}, headless=argv)

    def _finish(self, name: str, app: Container, runner: TaskKit, t0: float) -> TaskResult:
        exited = False
        while time.monotonic() - t0 < runner.budget_of(name):
            app.reload()
            if app.status not in ("running", "created"):
                exited = True
                break
            time.sleep(1)
        code = app.attrs["State"].get("ExitCode")
        assert self.read_turn, "body() loads the reader before any task runs"
        turn = self.read_turn(self._trajectory(app), None)
        turn.done = exited
        why = [f"the headless process {'exited with code ' + str(code) if exited else 'was still running'}",
               *(f"runtime error: {e[:300]}" for e in turn.errors),
               f"app log: {strip_ansi(tail(app, 400))[-600:]}"]
        return runner.verdict(name, self.app.container(self.app.runtime_name), turn, time.monotonic() - t0, why)

    def _trajectory(self, app: Container) -> list[dict[str, Any]]:
        """The events the process saved on exit (SAVE_TRAJECTORY_PATH), read from the
        stopped container."""
        try:
            stream, _ = app.get_archive(TRAJECTORY)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(tar.getmembers()[0])
                return list(json.load(member)) if member else []
        except (NotFound, APIError, tarfile.TarError, ValueError, IndexError):
            return []

    def _end_process(self) -> None:
        """After the process's app is gone: its runtime; the next task gets a fresh one."""
        launcher = self.app
        if launcher.runtime_name:
            self.seen.add(launcher.runtime_name)
        launcher.remove_runtime(launcher.runtime_name)
        launcher.runtime_name = None
