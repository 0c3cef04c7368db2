"""The API entry point, the documented deployment: the app server's API creates a
conversation, the watch follows its runtime, and the tasks are user messages in that
conversation (or, with `--llm replay`, recorded trajectories the app replays itself)."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import docker
from docker.models.containers import Container

from harness import modes
from harness.cells import conversations
from harness.cells.boot import BootClock
from harness.cells.cell import CellCore
from harness.cells.diagnosis import Decision
from harness.cells.facts import env_of
from harness.cells.plan import NO_LLM, CellPlan
from harness.cells.watch import RulesWatch
from harness.errors import AdapterError, TaskSetupError
from harness.host import cleanup
from harness.host.containers import free_port, read_file, tail
from harness.model import Cause, TaskResult, Verdict, strip_ansi
from harness.openhands import (
    Authenticates,
    Client,
    CountsEvents,
    KeepsKey,
    LlmSettings,
    NamesRuntime,
    Replays,
    RuntimeState,
    client_for,
    rules_for,
)
from harness.secrets import remember
from harness.tasks import replay
from harness.tasks.llmwatch import LlmWatch
from harness.tasks.taskrun import ConversationTasks, TaskKit


class ApiWatch(RulesWatch):
    """The connect watch through the app's API: one conversation, its runtime by name."""

    def __init__(self, cell: ApiCell, client: Client, conversation: str) -> None:
        super().__init__(cell.rules, lambda: cell.app.app_env)
        self.cell, self.client, self.conversation = cell, client, conversation

    def runtime(self) -> Container | None:
        app = self.cell.app
        if app.gen.runtime_is_app:
            return app.runtime()
        named = isinstance(self.client, NamesRuntime) and self.client.runtime_name(self.conversation)
        if app.runtime_name is None and named:  # named by the app at random: as soon as it says
            app.track_runtime(named)
        return app.runtime()

    def state(self) -> RuntimeState:
        return self.client.runtime_state(self.conversation)

    def callbacks(self, runtime: Container) -> list[tuple[str, str]]:
        return self.rules.callbacks.urls(env_of(runtime)) if self.rules.callbacks else []

    def callback_story(self, runtime: Container) -> list[str]:
        story = self.rules.callbacks.log(strip_ansi(tail(runtime, 400))) if self.rules.callbacks else []
        if isinstance(self.client, CountsEvents):
            sandbox, app = self.client.event_counts(self.conversation)
            if sandbox is not None or app is not None:
                story.append(f"events of the conversation: {sandbox if sandbox is not None else '?'} in the sandbox, "
                             f"{app if app is not None else '?'} received by the app")
        return story

    def runtime_running(self, runtime: Container) -> None:
        self.cell.runtime_running(runtime)


class ApiCell(CellCore):
    """Boot (app, API, conversation, watch), then the tasks if it connected."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__(plan)
        self.rules = rules_for(self.gen)
        self.kit: TaskKit | None = None
        self.task_error: str | None = None  # why the tasks cannot run although connect may pass
        self.key: str | None = None  # the app's session key, once authenticate found one
        self.launched: modes.AppLaunch | None = None
        self.host_paths: conversations.HostPaths | None = None  # an agent-server's Docker conversation runtime

    def body(self) -> None:
        with self.booting() as clock:
            connected = self.connect(clock)
        if connected is not None and self.result.connect.verdict == Verdict.PASS and self.kit is not None:
            self.run_tasks(*connected)

    def connect(self, clock: BootClock) -> tuple[Client, str, Container] | None:
        """Start the app, create a conversation, watch its runtime come up: the boot phase."""
        started = self.start_app()
        return None if started is None else self.converse(started[0], started[1], clock)

    def launch(self) -> modes.AppLaunch:
        return self.app.launch()

    def start_app(self) -> tuple[Client, Container] | None:
        """The app started as its mode says, its API up for the harness and the client
        authenticated; None once decided otherwise."""
        launch = self.launch()
        if self.gen.runtime_is_app and conversations.docker_runtime(launch.container_env()):
            self.in_containers(launch)
        app = self.app.start(launch)
        self.launched = launch
        url = self.app.app_url(launch, app)
        client = client_for(self.gen, url)
        self.resources.on_close(client.close)
        early = self.app.wait_api(app, client, launch, url) or self.authenticate(client, app)
        if early:
            self.decide(early, None, app)
            return None
        return client, app

    def in_containers(self, launch: modes.AppLaunch) -> None:
        """An agent-server that runs each conversation in a container of its own
        (conversations.py): one such cell at a time, and what the daemon creates on this
        machine for its bind mounts removed after the cell."""
        self.resources.stack.enter_context(conversations.one_at_a_time())
        env = launch.container_env()
        paths = conversations.HostPaths(conversations.roots([f"{env.get('HOME') or '/home/openhands'}/.openhands",
                                                             self.gen.workspace]))
        self.resources.on_close(paths.remove)
        self.host_paths = paths

    def converse(self, client: Client, app: Container, clock: BootClock) -> tuple[Client, str, Container] | None:
        """A conversation through `client`, and the watch of its runtime."""
        if self.host_paths is not None:
            return self.converse_in_containers(client, app, clock)
        llm = self.prepare_tasks(app)
        try:
            client.store_settings(llm)
            self.conversation_at = time.time()
            conversation = client.create_conversation(self.plan.message)
            if self.gen.runtime_is_app:
                self.app.runtime_is_app()
            elif (name := self.rules.runtime_container_name(conversation)) is not None:
                self.app.track_runtime(name)  # else named at random: the app says it later (ApiWatch)
        except AdapterError as e:
            self.decide(Decision(Verdict.FAIL, Cause.API_ERROR, str(e)[:400]), None, app)
            return None
        self.watch(ApiWatch(self, client, conversation), app, clock)
        return client, conversation, app

    def converse_in_containers(self, client: Client, app: Container,
                               clock: BootClock) -> tuple[Client, str, Container] | None:
        """The create call runs while the harness watches the conversation's container come
        up and the app's path to it (conversations.watch); connect only, for now."""
        client.store_settings(NO_LLM)
        self.conversation_at = time.time()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oh-matrix-create")
        self.resources.on_close(lambda: pool.shutdown(wait=False, cancel_futures=True))
        pending = pool.submit(client.create_conversation, self.plan.message)
        decision, seen, seconds = conversations.watch(self.client, app, pending, self.conversation_at,
                                                      self.plan.connect_budget, self.plan.run_id, self.app.phase)
        if seen is not None:
            self.app.runtime_name = self.result.runtime_container = seen.container.name
        if self.plan.tasks:
            self.result.notes.append("tasks not run: the agent's tools run in the conversation's own container, "
                                     "which the task kit does not reach yet (docs/runtimes.md)")
        if created := self.host_paths.created() if self.host_paths else []:
            self.result.notes.append(f"the daemon created {', '.join(created)} on this machine for the conversation "
                                     "container's bind mounts (the app's own paths, named by the agent-server in its "
                                     "container); removed after the cell")
        if decision is not None:
            self.decide(decision, seconds, app)
            return None
        try:
            conversation = pending.result(timeout=1)
        except (AdapterError, concurrent.futures.TimeoutError) as e:
            said = f"; its conversation container {seen.container.name} said last: {seen.last_words()}" \
                if seen is not None and seen.said else ""
            paths = conversations.own_paths(seen, created) if seen is not None else None
            self.decide(paths or Decision(Verdict.FAIL, Cause.API_ERROR,
                                          (str(e)[:400] or "the create call did not end") + said),
                        time.time() - self.conversation_at if paths else None, app)
            return None
        self.app.phase(f"conversation created in {seen.container.name if seen else 'a container'}")
        self.watch(ApiWatch(self, client, conversation), app, clock)
        if self.result.connect.verdict == Verdict.PASS:  # it connected when the create call returned
            self.result.connect.seconds = round(time.time() - self.conversation_at, 1)
        return client, conversation, app

    def authenticate(self, client: Client, app: Container) -> Decision | None:
        """Hand the client the key the app's deployment made, where its API wants one
        (KeepsKey rules: a setting, else the file the app keeps it in); None when done."""
        if not (isinstance(client, Authenticates) and isinstance(self.rules, KeepsKey)):
            return None
        key = self.rules.session_key(self.app.app_env, lambda path: read_file(app, path))
        if key == "":  # the deployment sets none, and the server then asks none
            return None
        if key is None:
            return Decision(Verdict.FAIL, Cause.API_ERROR,
                            "the app's API answers, but it has no session key: neither a setting nor the file "
                            "its entrypoint keeps it in gives one")
        remember(self.gen.api_key_env or "session key", key)  # scrubbed from every output from now on
        client.authenticate(key)
        self.key = key
        return None

    def prepare_tasks(self, app: Container) -> LlmSettings:
        """The LLM settings for the conversation: NO_LLM for a connect-only cell, else the
        scripted LLM (started at once when the app calls it) or the user's model."""
        p = self.plan
        if not p.tasks:
            return NO_LLM
        self.kit = TaskKit(self.resources, self.gen, p.images.app_image, self.resources.name, p.tasks, p.llm,
                           p.task_budget, free_port(), free_port(), catalog=p.catalog, images=p.images)
        self.resources.on_close(self.kit.close)  # sidecars go before the app whose namespace they share
        if self.gen.llm_caller == "app":
            self.start_llm(app.id)
        return self.kit.settings()

    def runtime_running(self, runtime: Container) -> None:
        if self.kit and self.gen.llm_caller == "sandbox" and self.kit.llm_sidecar is None and not self.task_error:
            self.start_llm(runtime.id)  # the sandbox calls the LLM: the LLM joins it as soon as it runs

    def start_llm(self, caller: str | None) -> None:
        assert self.kit is not None
        try:
            self.kit.start_llm(str(caller))
        except (docker.errors.DockerException, TimeoutError) as e:
            self.task_error = f"the scripted LLM did not start: {str(e)[:300]}"

    def run_tasks(self, client: Client, conversation: str, app: Container) -> None:
        kit = self.kit
        assert kit is not None
        runtime = self.app.runtime()
        if self.task_error or runtime is None:
            why = self.task_error or "the runtime container is gone"
            self.result.tasks = [kit.result(n, Verdict.SKIP, detail=skip) if (skip := kit.skip_reason(n))
                                 else kit.result(n, Verdict.ERROR, detail=why) for n in self.plan.tasks]
            return
        if self.plan.llm.replay:
            self.result.tasks = [self.replay(client, name) for name in self.plan.tasks]
            return
        watch = None
        if self.plan.llm.real is not None:  # the user's model: a dead endpoint is a cause in seconds
            caller = runtime if self.gen.llm_caller == "sandbox" else app
            watch = LlmWatch(caller, self.plan.llm.real.base_url, log_of=caller)
        self.result.tasks = ConversationTasks(kit, client, conversation, watch).run(runtime, self.app.phase)
        if self.plan.record_to is not None:  # python -m harness.devtools.record
            self.record(client.events(conversation))

    def record(self, events: list[dict[str, Any]]) -> None:
        assert self.kit is not None and self.plan.record_to is not None
        for task in self.result.tasks:
            recording = replay.extract(events, task.name, self.kit.where(name=task.name))
            if task.verdict == Verdict.PASS and recording is not None:
                replay.save(recording, self.plan.record_to)

    def replay(self, client: Client, name: str) -> TaskResult:
        """One built-in task replayed from its recording in a conversation of its own, with a
        runtime of its own, judged by the same effect check; the scripted LLM, the app's LLM
        here, has no scripts and records any call (there should be none)."""
        kit = self.kit
        assert kit is not None
        if self.gen.replay_skip or not isinstance(client, Replays):
            return kit.result(name, Verdict.SKIP, detail=self.gen.replay_skip or f"{self.gen.name} has no replay")
        recording = replay.load(name, kit.nonce, kit.git_port)
        if recording is None:
            return kit.result(name, Verdict.SKIP, detail=f"no recorded trajectory of {name} (only the built-in "
                                                         "tasks are recorded, in harness/tasks/catalogs/replay)")
        t0, runtime_name = time.monotonic(), None
        try:
            conversation = client.replay_conversation(recording.events)
            runtime_name = self.rules.runtime_container_name(conversation)
            if runtime_name is None:
                raise TaskSetupError("the app names the replay's runtime at random: no name to wait for")
            cleanup.register(self.plan.run_id, runtime_name)
            runtime = self.wait_running(runtime_name, kit.budget_of(name))
            kit.prepare(name, runtime)
            waited = ConversationTasks(kit, client, conversation).wait_turn(kit.key(name), kit.budget_of(name))
            return kit.verdict(name, runtime, waited.turn, time.monotonic() - t0,
                               kit.evidence(waited.turn, waited.api_error, name))
        except (AdapterError, docker.errors.DockerException, TaskSetupError, TimeoutError) as e:
            return kit.result(name, Verdict.ERROR, detail=f"could not replay the task: {str(e)[:300]}")
        finally:
            self.app.remove_runtime(runtime_name)

    def wait_running(self, name: str, budget: float) -> Container:
        t0 = time.monotonic()
        while time.monotonic() - t0 < budget:
            runtime = self.app.container(name)
            if runtime is not None and runtime.status == "running":
                return runtime
            time.sleep(1)
        raise TimeoutError(f"the replay's runtime {name} was not running within {budget:.0f} s")
