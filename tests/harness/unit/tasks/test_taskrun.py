"""When a task's turn counts as over (the effect check reads the runtime right after)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import generations
from harness.openhands import Turn
from harness.tasks import taskrun
from harness.tasks.taskrun import ConversationTasks, LlmChoice, TaskKit


class Replay:
    """A client whose turn() answers from a script, one look per call."""

    def __init__(self, looks: list[Turn]) -> None:
        self.looks, self.calls = looks, 0

    def turn(self, conversation: str, after: str | None) -> Turn:
        look = self.looks[min(self.calls, len(self.looks) - 1)]
        self.calls += 1
        return look


def runner(client: Any, budget: float = 5.0) -> ConversationTasks:
    kit = TaskKit(None, generations.V1, "img", "cell", ["create-file"], LlmChoice(), budget)  # type: ignore[arg-type]
    return ConversationTasks(kit, client, "c1")


def stopped(actions: int, errors: int = 0) -> Turn:
    return Turn(done=True, state="finished", actions=[f"a{i}" for i in range(actions)],
                errors=[f"e{i}" for i in range(errors)])


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(taskrun, "POLL", 0.0)


def test_a_stopped_look_with_events_still_arriving_is_not_the_end() -> None:
    # Look 1 paired a stopped status with events read mid-turn; the error came after.
    replay = Replay([stopped(1), stopped(2, errors=1), stopped(2, errors=1)])
    waited = runner(replay).wait_turn("marker")
    turn = waited.turn
    assert waited.api_error is None and turn is not None
    assert (turn.actions, turn.errors, replay.calls) == (["a0", "a1"], ["e0"], 3)


def test_a_running_look_between_two_stopped_ones_starts_over() -> None:
    running = Turn(done=False, state="running", actions=["a0"])
    replay = Replay([stopped(1), running, stopped(1), stopped(1)])
    assert runner(replay).wait_turn("marker").turn is not None and replay.calls == 4


def test_a_turn_that_never_settles_returns_the_last_look_at_the_budget() -> None:
    replay = Replay([Turn(done=False, state="running")])
    waited = runner(replay, budget=0.05).wait_turn("marker")
    assert waited.turn is not None and not waited.turn.done and waited.api_error is None


class DeadLlm:
    """An LLM watch whose endpoint refuses every probe (the two-look rule of llmwatch)."""

    def __init__(self) -> None:
        self.failed_probes, self.looks = 0, 0

    def check(self, turn: Turn | None) -> tuple[str, list[str]] | None:
        self.looks += 1
        self.failed_probes += 1
        return ("llm-unreachable", ["127.0.0.1:9 TCP refused"]) if self.failed_probes >= 2 else None


class Sender(Replay):
    def __init__(self, looks: list[Turn]) -> None:
        super().__init__(looks)
        self.sent: list[str] = []

    def send_message(self, conversation: str, text: str) -> None:
        self.sent.append(text)


def test_a_dead_llm_ends_the_greetings_turn_and_the_tasks_in_seconds() -> None:
    # The greeting's turn never ends while OpenHands retries: the watch ends the wait.
    agent = Sender([Turn(done=False, state="running")])
    r = runner(agent, budget=30.0)
    r.llm_watch = DeadLlm()  # type: ignore[assignment]
    assert r.wait_turn(None).llm_failure is not None and r.llm_watch.looks == 2  # type: ignore[union-attr]
    # Proven dead and still dead when probed again: the task fails with the cause, unsent.
    result = r.one("create-file", None)  # type: ignore[arg-type]
    assert (result.verdict, result.cause) == ("fail", "llm-unreachable") and agent.sent == []
    assert result.seconds is not None and result.seconds < 1 and "not sent" in " ".join(result.evidence)
