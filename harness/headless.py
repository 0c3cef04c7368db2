"""The headless entry point as a matrix axis: the same release and mode, but the app image
runs `python -m openhands.core.main -t TASK` (V0, openhands/core/main.py at 0.62.0), as
the original report's third approach did, configured by env with confirmation off.

It has no API: one process per task, which starts its own runtime through the same
DockerRuntime and exits when the agent is done. So the first process also decides the
connect verdict (the runtime is ready when the process logs `Runtime is ready.`,
docker_runtime.py), with the same probes and rules as the API cells; each process's
actions come from its saved trajectory, and its effect is read from its runtime, which
`SANDBOX_KEEP_RUNTIME_ALIVE=true` keeps for the check (the harness removes it after).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from dataclasses import replace
from typing import Any

import requests
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from harness import cleanup
from harness.cell import CellRun, free_port
from harness.diagnosis import Decision, Observation
from harness.openhands import LlmSettings, RuntimeState
from harness.openhands.v0 import V0Adapter, turn_from_events
from harness.results import Connect, strip_ansi
from harness.taskrun import TaskRunner
from harness.tasks import CATALOG, TaskResult

READY_LINE = "Runtime is ready."
TRAJECTORY = "/tmp/oh-matrix-trajectory.json"
NO_TASK = "Say hello."
MAX_ITERATIONS = "30"
V1_SKIP = ("the headless entry point is V0's `python -m openhands.core.main`; 1.x ships its CLI "
           "as a separate package")


def headless_env(llm: LlmSettings) -> dict[str, str]:
    """How openhands.core.main is configured without a config.toml (core/config/utils.py
    reads these names)."""
    return {"LLM_MODEL": llm.model, "LLM_API_KEY": llm.api_key, "LLM_BASE_URL": llm.base_url,
            "SECURITY_CONFIRMATION_MODE": "false", "SANDBOX_KEEP_RUNTIME_ALIVE": "true",
            "SAVE_TRAJECTORY_PATH": TRAJECTORY}


class HeadlessAdapter(V0Adapter):
    """Just enough of the adapter for the connect watch: the app's state is its log."""

    def __init__(self, cell: HeadlessCell) -> None:
        super().__init__("http://127.0.0.1:9")  # never called: there is no API
        self.cell = cell

    def runtime_state(self, conversation_id: str) -> RuntimeState:
        logs = strip_ansi(self.cell.app_logs())
        ready = READY_LINE in logs
        return RuntimeState(ready=ready, status="runtime ready" if ready else "starting the runtime")

    def runtime_container_name(self, conversation_id: str) -> str:
        return conversation_id  # the cell sets it to the runtime it found by label


class HeadlessCell(CellRun):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: set[str] = set()  # runtimes of earlier processes (each is removed after its task)
        self.current: str | None = None  # the task of the running process
        self.prepared = False  # its runtime has what the task needs
        self.prepare_error: str | None = None

    def app_logs(self) -> str:
        if self.app is None or self.app._container is None:
            return ""
        with contextlib.suppress(NotFound, APIError):
            return str(self.app._container.logs(tail=400).decode(errors="replace"))
        return ""

    def _runtime(self, adapter: Any) -> Container | None:
        """This process's runtime: named by a hash OpenHands makes, found by the cell label
        it passes through (SANDBOX_DOCKER_RUNTIME_KWARGS)."""
        for c in self.client.containers.list(all=True, filters={"label": f"{cleanup.CELL_LABEL}={self.plan.cell.id}"}):
            if (c.name.startswith("openhands-runtime-") and c.labels.get(cleanup.RUN_LABEL) == self.plan.run_id
                    and c.name not in self.seen):
                self.runtime_name = self.conversation = c.name
                self.result.runtime_container = c.name
                return c
        return None

    def _observe(self, adapter: Any, app: Container, t0: float,
                 url: str | None) -> tuple[Observation, str | None]:
        o, url = super()._observe(adapter, app, t0, url)
        if o.state is None:  # the process may be done already: its log outlives it
            o.state = adapter.runtime_state("")
        return o, url

    def _runtime_running(self) -> None:
        self._prepare()

    def _prepare(self) -> str | None:
        """What a task needs in its runtime (a seeded file, the git server), put there as
        soon as this process's runtime runs: the process gives the agent its task at once.
        Returns why that failed, if it did."""
        runtime = self._runtime_by_name()
        if self.prepared or not (self.current and self.runner and runtime):
            return self.prepare_error
        self.prepared = True
        try:
            self.runner.prepare(self.current, runtime)
        except (DockerException, TimeoutError, RuntimeError) as e:
            self.prepare_error = f"could not prepare the task in the runtime: {str(e)[:300]}"
        return self.prepare_error

    def _run(self) -> None:
        p = self.plan
        if p.images.api != "v0":
            self.result.connect = Connect("skip", reason=V1_SKIP)
            return
        if p.tasks:
            self.runner = TaskRunner(self.client, HeadlessAdapter(self), "", "v0", p.images.app_image, self.name,
                                     self.labels, p.tasks, p.llm, p.task_budget, free_port(), free_port())
        results: list[TaskResult] = []
        for i, name in enumerate(p.tasks or [None]):
            result = self._process(name, first=i == 0)
            if result is not None:
                results.append(result)
            if self.result.connect.verdict != "pass":
                break  # the entry point cannot reach its runtime: the rest would say the same
        self.result.tasks = [r.to_dict() for r in results]

    def _process(self, name: str | None, first: bool) -> TaskResult | None:
        """One `openhands.core.main -t` process: start, watch its runtime come up (the first
        one decides connect), wait for it to exit, check the task's effect, clean up."""
        p = self.plan
        runner = self.runner
        self.current, self.prepared, self.prepare_error = name, False, None
        prompt = CATALOG[name].message(runner.where()) if name and runner else NO_TASK
        llm = runner.settings() if runner else LlmSettings("openai/gpt-4o", "oh-matrix-no-llm", "http://127.0.0.1:9/v1")
        shown = self.result.docker_run, self.result.app_env
        launch = self._launch()
        env = {**headless_env(llm), **launch.env}
        launch = replace(launch, env=env, headless=["python", "-m", "openhands.core.main", "-t", prompt,
                                                    "-i", MAX_ITERATIONS])
        if first:  # the command a person would type, for the first task
            # The scripted LLM's address means nothing to a person: their model goes there.
            mine = {"LLM_API_KEY"} if p.llm.real else {"LLM_API_KEY", "LLM_BASE_URL", "LLM_MODEL"}
            self.result.docker_run = launch.docker_run(p.secrets | mine)
            self.result.app_env = dict(launch.env)
        else:
            self.result.docker_run, self.result.app_env = shown
        app = self._start_app(launch)
        adapter = HeadlessAdapter(self)
        t0 = time.monotonic()
        try:
            if runner:
                runner.start_llm(str(app.id))
            self._watch(adapter, app)
            if not first and self.result.connect.verdict != "pass":
                return TaskResult(str(name), "error", detail=f"this process's runtime did not connect: "
                                                            f"{self.result.connect.cause}")
            if name is None or runner is None or self.result.connect.verdict != "pass":
                return None
            problem = self._prepare()  # in case the watch decided before it saw the runtime run
            if problem:
                return TaskResult(name, "error", detail=problem)
            return self._finish(name, app, runner, t0)
        except (DockerException, TimeoutError) as e:
            if first and self.result.connect.verdict == "skip":
                self._decide(Decision("error", "harness-error", f"Docker: {str(e)[:300]}"), None)
            return TaskResult(str(name), "error", detail=str(e)[:300]) if name else None
        finally:
            self._end_process(runner)

    def _finish(self, name: str, app: Container, runner: TaskRunner, t0: float) -> TaskResult:
        try:
            app.wait(timeout=runner.budget)
            exited = True
        except requests.exceptions.RequestException:  # ReadTimeout: still running at the budget
            exited = False
        app.reload()
        code = app.attrs["State"].get("ExitCode")
        turn = turn_from_events(self._trajectory(app), None)
        turn.done = exited
        why = [f"the headless process {'exited with code ' + str(code) if exited else 'was still running'}",
               *(f"runtime error: {e[:300]}" for e in turn.errors),
               f"app log: {strip_ansi(self.app_logs())[-600:]}"]
        return runner.verdict(name, self._runtime_by_name(), turn, time.monotonic() - t0, why)

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

    def _runtime_by_name(self) -> Container | None:
        if not self.runtime_name:
            return None
        with contextlib.suppress(NotFound):
            return self.client.containers.get(self.runtime_name)
        return None

    def _end_process(self, runner: TaskRunner | None) -> None:
        """Remove this process's sidecars, app and runtime; the next task gets fresh ones."""
        if runner is not None:
            runner.close()
        if self.app is not None and self.app._container is not None:
            cleanup.remove_container(self.app._container)
        self.app = None
        if self.runtime_name:
            self.seen.add(self.runtime_name)
        self._remove_runtime()
        self.runtime_name = self.conversation = None

