"""The CLI entry point as a matrix axis: the `openhands` CLI from PyPI, run the way an
automation runs it (`openhands --headless --override-with-envs -t TASK`, no TTY, the LLM
settings from LLM_*), in a container on the cell's networking mode, against the scripted
LLM on that container's loopback.

The CLI runs its agent in its own process (the SDK's LocalConversation and LocalWorkspace):
there is no sandbox, so no runtime to reach and no callback. The connect verdict says
whether the CLI ran headless on this mode and its agent loop reached its LLM; each task is
one CLI process in a fresh container, judged by its effect in the CLI's working folder,
which the container keeps (it runs `sleep`, the CLI runs inside it) until the check is done.
Which CLI release a target pairs with is images/cli.py's data.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from dataclasses import replace
from typing import Any

from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from harness.cells.cell import CellCore
from harness.cells.diagnosis import Decision
from harness.deployments.spec import with_task
from harness.errors import TaskSetupError
from harness.host.containers import free_port
from harness.model import Cause, Connect, Evidence, Source, TaskResult, Verdict, strip_ansi
from harness.openhands import LlmSettings
from harness.openhands.cli import (
    AGENT,
    CONVERSATIONS,
    DEAD_PROXY,
    WORKDIR,
    cli_env,
    command,
    harness_env,
    headless_lack,
    read_conversation,
    turn,
)
from harness.secrets import redact_env
from harness.tasks.taskrun import TaskKit

NO_TASK = "Say hello."
LOG = "/tmp/oh-matrix-cli.log"  # the CLI's output, read back for the evidence


class CliCell(CellCore):
    def body(self) -> None:
        p, images = self.plan, self.plan.images
        if images.cli_version is None:
            self.error(Cause.HARNESS_ERROR, "no CLI release was paired with this target (the images step did not run)")
            return
        if lack := headless_lack(images.cli_version):
            self.result.connect = Connect(verdict=Verdict.SKIP, reason=f"{lack} ({images.cli_pair})")
            return
        if images.cli_image is None:
            self.decide(Decision(Verdict.FAIL, Cause.IMAGE_UNAVAILABLE, images.cli_error or "no CLI image"), None)
            return
        self.result.app_image, self.result.runtime_image = images.cli_image, None
        self.result.notes.append(f"{images.cli_pair}; no sandbox: the CLI runs its agent in its own process, "
                                 f"in {WORKDIR} of its container")
        kit = TaskKit(self.resources, AGENT, images.cli_image, self.resources.name, p.tasks, p.llm,
                      p.task_budget, free_port(), free_port(), catalog=p.catalog) if p.tasks else None
        skips = {n: why for n in p.tasks if kit and (why := kit.skip_reason(n))}
        runnable: list[str | None] = [n for n in p.tasks if n not in skips] or [None]
        done: dict[str, TaskResult] = {}
        for i, name in enumerate(runnable):
            with contextlib.ExitStack() as process:
                result = self._process(name, kit, first=i == 0, process=process)
            if result is not None:
                done[result.name] = result
            if self.result.connect.verdict != Verdict.PASS:
                break  # the CLI does not run here: the rest would say the same
        if kit and self.result.connect.verdict == Verdict.PASS:
            done |= {n: kit.result(n, Verdict.SKIP, detail=why) for n, why in skips.items()}
            self.result.tasks = [done[n] for n in p.tasks if n in done]

    def _process(self, name: str | None, kit: TaskKit | None, first: bool,
                 process: contextlib.ExitStack) -> TaskResult | None:
        """One CLI process, in a container of its own on the cell's mode: start it, give it
        its LLM and its task's files, run the CLI to its end, read its events, check."""
        p = self.plan
        assert p.images.cli_image is not None
        prompt = kit.message(name) if name and kit else NO_TASK
        llm = kit.settings() if kit else LlmSettings(model="openai/none", api_key="none", base_url=DEAD_PROXY + "/v1")
        before = self.result.docker_run, self.result.app_env
        app = self.app.launch()  # the mode's networking, as for the app; the app's own settings left out
        self.result.docker_run, self.result.app_env = before
        dep = p.cell.mode.deployment
        if dep is None:
            env = {**p.env, **cli_env(llm)}  # the matrix's, the mode's and --app-env's settings, and the CLI's
            shown = replace(app, image=p.images.cli_image, env=env, socket=None, host_port=None,
                            headless=command(prompt), harness_env=harness_env(), moved_env={})
        else:  # a user's CLI line: theirs, with the harness's task and LLM (said in the notes)
            argv, said = with_task(dep.service.command or (), prompt)
            if first:
                self.result.notes += [said, f"set by the harness to run and read its tasks: "
                                            f"{', '.join([*cli_env(llm), *harness_env()])}"]
            shown = replace(app, image=p.images.cli_image, env={**dep.service.environment, **p.env},
                            host_port=None, headless=argv, harness_env=harness_env(),
                            moved_env={**app.moved_env, **cli_env(llm)})
        if first:  # the line an automation runs; the scripted LLM's address means nothing to a person
            mine = {"LLM_API_KEY"} if p.llm.real else {"LLM_API_KEY", "LLM_BASE_URL", "LLM_MODEL"}
            self.result.docker_run = shown.docker_run(p.secrets | mine, name="openhands-cli").replace(
                "docker run -it --rm", "docker run --rm", 1)
            self.result.app_env = redact_env(shown.env)
        launch = replace(shown, headless=["sleep", "infinity"])
        t0 = time.monotonic()
        # The first process is the cell's boot: its container, the CLI's start and its first
        # LLM call, up to the connect verdict (admission slot and meter, boot.py).
        with self.booting() if first else contextlib.nullcontext():
            container = self.app.start(launch, stack=process)
            if dep is None:
                self.result.socket_mounted_in = []  # the CLI is given no Docker socket
            container.exec_run(["mkdir", "-p", WORKDIR, CONVERSATIONS])  # its working folder, before the task's files
            self.conversation_at = time.time()
            if kit:
                process.callback(kit.close)  # the sidecars, before the container whose namespace they share
                kit.start_llm(str(container.id))
            if name and kit:
                try:
                    kit.prepare(name, container)
                except (DockerException, TimeoutError, TaskSetupError) as e:
                    if first:
                        self.decide(Decision(Verdict.ERROR, Cause.HARNESS_ERROR, f"could not prepare the task: {e}"),
                                    None)
                    return kit.result(name, Verdict.ERROR, detail=f"could not prepare the task: {str(e)[:300]}")
            budget = kit.budget_of(name) if name and kit else p.connect_budget
            code, log = self._run_cli(container, shown.headless or command(prompt), shown.container_env(), budget)
            events, state = self._events(container)
            seconds = time.monotonic() - t0
            told = [f"the CLI {'exited with code ' + str(code) if code is not None else 'was still running'} after "
                    f"{seconds:.1f} s", f"its output: {log[-600:]}"]
            if first:
                self._decide_connect(code, events, kit, seconds, told)
        if name is None or kit is None or self.result.connect.verdict != Verdict.PASS:
            return None
        return kit.verdict(name, container, turn(events, state, code is not None), seconds, told)

    def _run_cli(self, container: Container, argv: list[str], env: dict[str, str],
                 budget: float) -> tuple[int | None, str]:
        """The CLI in the container, as `docker exec` runs it, with no TTY: (its exit code,
        None when it overran the budget; the tail of its output)."""
        api = self.client.api
        script = f"{shlex.join(argv)} > {LOG} 2>&1"
        exec_id = api.exec_create(container.id, ["sh", "-c", script], environment=env, workdir=WORKDIR)["Id"]
        api.exec_start(exec_id, detach=True)
        self.app.phase("the CLI runs headless")
        deadline = time.monotonic() + budget
        # The daemon's exec has no wait: its state is polled, once a second, up to the budget.
        while (state := api.exec_inspect(exec_id)).get("Running") and time.monotonic() < deadline:
            time.sleep(1)
        running = bool(state.get("Running"))
        code = None if running else state.get("ExitCode")
        out = container.exec_run(["sh", "-c", f"tail -c 4000 {LOG}"]).output.decode(errors="replace")
        self.app.phase(f"the CLI {'was still running at the budget' if running else f'exited {code}'}")
        return code, strip_ansi(out)

    def _events(self, container: Container) -> tuple[list[dict[str, Any]], str | None]:
        """The conversation as the CLI persisted it (openhands/cli.py read_conversation)."""
        try:
            stream, _ = container.get_archive(CONVERSATIONS)
        except (NotFound, APIError):
            return [], None
        return read_conversation(b"".join(stream))

    def _decide_connect(self, code: int | None, events: list[dict[str, Any]], kit: TaskKit | None,
                        seconds: float, told: list[str]) -> None:
        """Pass when the CLI's agent loop ran: its LLM answered it (the scripted LLM's own
        record of requests, or an agent event for the user's model)."""
        asked = len(kit.records()) if kit and kit.choice.scripted else None
        agent = [e for e in events if e.get("source") == "agent"]
        ran = asked > 0 if asked is not None else bool(agent)
        if code is None:
            d = Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED, f"the CLI was still running after {seconds:.0f} s")
        elif ran:
            d = Decision(Verdict.PASS, None, "the CLI ran headless; its agent called its LLM"
                                             + (f" {asked} time(s)" if asked is not None else ""))
        elif not events:
            d = Decision(Verdict.FAIL, Cause.APP_EXITED, f"the CLI exited {code} before it started a conversation")
        else:
            d = Decision(Verdict.FAIL, Cause.LLM_UNREACHABLE, f"the CLI exited {code}: its agent never reached "
                                                              "its LLM")
        self.decide(d, seconds)
        self.result.connect.evidence += [Evidence(source=Source.APP_LOG, text=line[:800]) for line in told]
