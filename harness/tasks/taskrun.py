"""Running the task catalog on a cell that connected: the scripted LLM and the git server
as sidecars, one user message per task, the effect checks. `TaskKit` is the tasks and what
they need, `ConversationTasks` delivers them in one conversation of the app's API.

The sidecars join the network namespace of whoever uses them (`network_mode=container:`)
and listen on its loopback: the LLM in the caller's (the generation says whose: V0's app,
V1's agent-server sandbox), the git server in the runtime's. So a task verdict is about the
runtime and the agent loop, never about whether the mode under test lets one container
reach another.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException
from docker.models.containers import Container

from harness.errors import AdapterError, TaskSetupError
from harness.generations import Generation
from harness.host.containers import CellResources
from harness.model import Cause, ImageSet, TaskResult, Verdict
from harness.openhands import Client, LlmSettings, Turn
from harness.secrets import Secret
from harness.tasks import CATALOG, GIT_REPO, Task, Where, llm
from harness.tasks.llmwatch import UNREACHABLE_TO_DECIDE, LlmWatch

POLL = 1.0
LLM_SOURCE = Path(llm.__file__).read_text()
GIT_READY = "Ready to rumble"  # what `git daemon --verbose` logs once it listens


@dataclass
class LlmChoice:
    """Scripted (no key, deterministic), the user's real model, or none at all (a replay)."""

    real: LlmSettings | None = None  # None: the scripted LLM
    # Recorded trajectories replayed by OpenHands itself (replay.py): the scripted LLM runs
    # with no scripts, only to show that nobody called it.
    replay: bool = False

    @property
    def scripted(self) -> bool:
        return self.real is None


def llm_env(gen: Generation, scripts: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """What the scripted LLM sidecar needs: the scripts, and the generation's tool names."""
    tools = {"bash": [gen.tools.bash], "edit": [gen.tools.edit], "finish": [gen.tools.finish],
             "ipython": [gen.tools.ipython] if gen.tools.ipython else []}
    return {llm.SCRIPTS_ENV: json.dumps(scripts), llm.TOOLS_ENV: json.dumps(tools)}


@dataclass
class TaskKit:
    """A cell's tasks and what they need, whatever delivers them: the catalog's tasks, the
    LLM choice, the sidecars (the scripted LLM in its caller's namespace, one git server per
    runtime), the set-up before a task and the effect check after it. It knows no API: the
    API cell's `ConversationTasks` and the headless cell's processes deliver the messages."""

    resources: CellResources  # the cell's: labels, client
    gen: Generation
    helper_image: str  # any image of the release with python3 and git: the app's
    name: str  # the cell's container name, prefix of the sidecars'
    tasks: list[str]
    choice: LlmChoice
    budget: float
    llm_port: int = 0  # free on the host: in host-network modes the loopback is the host's
    git_port: int = 0
    catalog: dict[str, Task] = field(default_factory=lambda: dict(CATALOG))  # the run's tasks by name
    images: ImageSet | None = None  # what the images lack (a task that needs it is skipped)
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    llm_sidecar: Container | None = None
    gits: dict[str, Container] = field(default_factory=dict)  # runtime id -> its git server
    sidecars: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        where = Where(self.gen.workspace, self.nonce, git_port=self.git_port)
        for name in [] if self.choice.replay else self.tasks:
            task = self.task(name)
            if task.steps is not None and self.skip_reason(name) is None:
                self.scripts[f"{name} {self.nonce}"] = task.steps(where)

    def task(self, name: str) -> Task:
        return self.catalog[name]

    def skip_reason(self, name: str) -> str | None:
        """Why the task cannot run on this cell (a skip, with the reason), or None."""
        return self.task(name).skip(self.gen, self.images, self.choice.scripted)

    def budget_of(self, name: str) -> float:
        return self.task(name).budget or self.budget

    def message(self, name: str) -> str:
        return self.task(name).message(self.where(), self.choice.scripted)

    def key(self, name: str) -> str:
        """What finds the task's user message in the event stream (the marker, or a task
        file's instruction as a real LLM got it)."""
        return self.task(name).key(self.where(), self.choice.scripted)

    def result(self, name: str, verdict: Verdict, **kw: Any) -> TaskResult:
        task = self.task(name)
        return TaskResult(name=name, verdict=verdict, catalog=task.catalog, source=task.source, **kw)

    # -- the sidecars --------------------------------------------------------------------------

    def settings(self) -> LlmSettings:
        if self.choice.real is not None:
            return self.choice.real
        return LlmSettings(model=llm.MODEL, api_key=llm.API_KEY, base_url=f"http://127.0.0.1:{self.llm_port}/v1")

    def start_llm(self, caller: str) -> None:
        """The scripted LLM on the loopback of `caller` (the container that calls the LLM)."""
        if not self.choice.scripted or self.llm_sidecar is not None:
            return
        self.llm_sidecar = self.resources.sidecar(
            self.helper_image, f"{self.name}-llm", caller,
            ["python3", "-c", LLM_SOURCE, "--port", str(self.llm_port)], "oh-matrix scripted LLM on",
            llm_env(self.gen, self.scripts), stack=self.sidecars)

    def records(self) -> list[dict[str, Any]]:
        if self.llm_sidecar is None:
            return []
        with contextlib.suppress(DockerException):
            code, out = self.llm_sidecar.exec_run(["cat", llm.RECORD])
            if code == 0:
                return [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return []

    def start_git(self, runtime: Container) -> None:
        port = self.git_port
        seed = (f"set -e; git init -q --bare -b main /srv/git/{GIT_REPO}; "
                f"git clone -q /srv/git/{GIT_REPO} /tmp/seed 2>/dev/null; cd /tmp/seed; "
                "echo '# oh-matrix task repository' > README.md; git add README.md; "
                "git -c user.name=oh-matrix -c user.email=oh-matrix@localhost commit -q -m seed; "
                "git push -q origin HEAD:main; "
                "exec git daemon --verbose --reuseaddr --export-all --enable=receive-pack --base-path=/srv/git "
                f"--listen=127.0.0.1 --port={port} /srv/git")
        suffix = f"-{len(self.gits)}" if self.gits else ""  # a replay's runtime gets one of its own
        self.gits[str(runtime.id)] = self.resources.sidecar(
            self.helper_image, f"{self.name}-git{suffix}", str(runtime.id), ["sh", "-c", seed], GIT_READY,
            stack=self.sidecars)

    def close(self) -> None:
        """Remove the sidecars (before the containers whose namespaces they share)."""
        self.sidecars.close()
        self.gits, self.llm_sidecar = {}, None

    # -- before and after a task ---------------------------------------------------------------

    def where(self, runtime: Container | None = None, name: str | None = None) -> Where:
        """The cell as task `name` sees it: with its secrets' values (from the harness's own
        environment, for setup and check only) and its budget for one command."""
        task = self.task(name) if name else None
        env: dict[str, str] = {k: Secret(os.environ.get(k, ""), k, "secrets") for k in (task.secrets if task else ())}
        git = self.gits.get(str(runtime.id)) if runtime is not None else None
        return Where(self.gen.workspace, self.nonce, runtime, git, self.git_port, env=env,
                     timeout=self.budget_of(name) if name else self.budget)

    def prepare(self, name: str, runtime: Container) -> None:
        """What the task needs in the runtime before the agent sees it: its seeded files and
        setup commands, and the git server (one per runtime, started with the first task
        that needs it). Raises TaskSetupError or DockerException."""
        task = self.task(name)
        missing = [k for k in task.secrets if k not in os.environ]
        if missing:
            raise TaskSetupError(f"secret {missing[0]} is not set in the harness's environment")
        if task.setup:
            task.setup(self.where(runtime, name))
        if task.needs_git and str(runtime.id) not in self.gits:
            self.start_git(runtime)

    def verdict(self, name: str, runtime: Container | None, turn: Turn | None, seconds: float,
                why: list[str]) -> TaskResult:
        """The task's effect, read back from the runtime (or the git server); on a failure,
        `why` (what the entry point saw) and what the LLM was asked, as evidence."""
        check = self.task(name).check(self.where(runtime, name), turn or Turn(done=False, state="?"))
        # The agent's calls: requests that offered it tools (a title request offers none).
        calls = [r for r in self.records() if r.get("task") == f"{name} {self.nonce}" and r.get("tools")]
        r = self.result(name, Verdict.PASS if check.ok else Verdict.FAIL, seconds=round(seconds, 1),
                        detail=check.detail, llm_calls=len(calls) if self.choice.scripted else None,
                        actions=turn.actions if turn else [], finding=check.finding)
        if check.ok and check.finding:
            r.evidence = check.evidence
        if not check.ok:
            never = ["the LLM was never called for this task"] if self.choice.scripted and not calls else []
            r.evidence = never + why + check.evidence + [
                f"LLM step {c['step']}: answered {c['answer']}" + (f" {c['said']!r}" if c.get("said") else "")
                + (f" ({c['error']})" if c.get("error") else "")
                for c in calls]
            r.detail = f"{check.detail}; {r.evidence[0]}" if r.evidence else check.detail
        return r

    def evidence(self, turn: Turn | None, api_error: str | None, name: str | None = None) -> list[str]:
        """What the entry point saw of a turn, for a failing verdict."""
        if turn is None:
            return [f"the agent's progress could not be read: {api_error}"]
        budget = self.budget_of(name) if name else self.budget
        out = [] if turn.done else [f"the agent did not finish within {budget:.0f} s (state {turn.state})"]
        out += [f"runtime error: {e[:300]}" for e in turn.errors]
        out += [f"runtime output: {o[:300]}" for o in [o for o in turn.outputs if o.strip()][-2:]]
        return out + [f"action: {a}" for a in turn.actions]


@dataclass
class Waited:
    """A turn once it is over (or the budget ran out), and what stopped the wait."""

    turn: Turn | None
    api_error: str | None = None  # the last look could not read the turn
    llm_failure: tuple[Cause, list[str]] | None = None  # the LLM watch found the model unusable


class ConversationTasks:
    """The tasks as user messages in one conversation of the app's API, each turn waited
    for on the harness's own clock and checked by the kit."""

    def __init__(self, kit: TaskKit, client: Client, conversation: str, llm_watch: LlmWatch | None = None) -> None:
        self.kit, self.client, self.conversation, self.llm_watch = kit, client, conversation, llm_watch

    def wait_turn(self, after: str | None, budget: float | None = None) -> Waited:
        """The turn once it is over: stopped on two polls in a row with nothing new between
        them. V1's status and events are two calls, so one look can pair a stopped status
        with events read mid-turn (a task once 'failed' in 0.2 s with its error unseen)."""
        t0, last, error, settled = time.monotonic(), None, None, None
        while time.monotonic() - t0 < (budget or self.kit.budget):
            try:
                last = self.client.turn(self.conversation, after)
                error = None
                # the greeting's turn too: a dead endpoint would hold it for OpenHands' whole
                # retry backoff (measured: 140 s of a 160 s cell) before the first task is sent
                if self.llm_watch is not None and (failed := self.llm_watch.check(last)) is not None:
                    return Waited(last, llm_failure=failed)
                seen = (len(last.actions), len(last.outputs), len(last.errors), len(last.said)) if last.done else None
                if seen is not None and seen == settled:
                    return Waited(last)
                settled = seen
            except AdapterError as e:
                error = str(e)[:300]
            time.sleep(POLL)
        return Waited(last, api_error=error)

    def run(self, runtime: Container, phase: Callable[[str], None] = lambda text: None) -> list[TaskResult]:
        """Every task in turn; `phase` hears each one start and end (progress.py)."""
        # The conversation's first message (the connect check's greeting) ends its own turn
        # first; a task message sent while the agent still runs would mix the two turns.
        self.wait_turn(None)
        if self.llm_watch is not None:  # the first task is sent whatever the greeting showed
            self.llm_watch.failed_probes = 0
        results = []
        for name in self.kit.tasks:
            phase(f"task {name}: started")
            r = self.one(name, runtime)
            after = f" after {r.seconds} s" if r.seconds is not None else ""
            why = r.detail if r.verdict != "pass" else r.finding and f"finding: {r.finding}"
            phase(f"task {name}: {r.verdict}{after}" + (f" ({why[:160]})" if why else ""))
            results.append(r)
        return results

    def one(self, name: str, runtime: Container) -> TaskResult:
        kit = self.kit
        skip = kit.skip_reason(name)
        if skip:
            return kit.result(name, Verdict.SKIP, detail=skip)
        t0 = time.monotonic()
        watch = self.llm_watch
        if watch is not None and watch.failed_probes >= UNREACHABLE_TO_DECIDE and (dead := watch.check(None)):
            # Still unreachable, probed again just now: the agent cannot work, and V1's
            # agent-server would hold the message for its retries (a task took 31 s so).
            cause, evidence = dead
            return self._llm_failed(name, t0, cause, [*evidence, "the task was not sent: the agent cannot work "
                                                                  "without its LLM"])
        try:
            kit.prepare(name, runtime)
            self.client.send_message(self.conversation, kit.message(name))
        except (AdapterError, DockerException, TaskSetupError, TimeoutError) as e:
            return kit.result(name, Verdict.ERROR, detail=f"could not start the task: {str(e)[:300]}")
        waited = self.wait_turn(kit.key(name), kit.budget_of(name))
        seconds = time.monotonic() - t0
        if waited.llm_failure is not None:  # the agent could not work: its effect is not the question
            turn = waited.turn
            return self._llm_failed(name, t0, *waited.llm_failure, actions=turn.actions if turn else [])
        return kit.verdict(name, runtime, waited.turn, seconds, kit.evidence(waited.turn, waited.api_error, name))

    def _llm_failed(self, name: str, t0: float, cause: Cause, evidence: list[str],
                    actions: list[str] | None = None) -> TaskResult:
        return self.kit.result(name, Verdict.FAIL, cause=cause, seconds=round(time.monotonic() - t0, 1),
                               detail=f"{cause}: {evidence[0]}", evidence=evidence, actions=actions or [])
