"""When a task's turn counts as over (the effect check reads the runtime right after)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import generations, taskrun
from harness.openhands import Turn
from harness.taskrun import LlmChoice, TaskRunner

pytestmark = pytest.mark.unit


class Replay:
    """An adapter whose turn() answers from a script, one look per call."""

    def __init__(self, looks: list[Turn]) -> None:
        self.looks, self.calls = looks, 0

    def turn(self, conversation: str, after: str | None) -> Turn:
        look = self.looks[min(self.calls, len(self.looks) - 1)]
        self.calls += 1
        return look


def runner(adapter: Any, budget: float = 5.0) -> TaskRunner:
    return TaskRunner(None, adapter, generations.V1, "img", "cell", ["create-file"],  # type: ignore[arg-type]
                      LlmChoice(), budget, conversation="c1")


def stopped(actions: int, errors: int = 0) -> Turn:
    return Turn(done=True, state="finished", actions=[f"a{i}" for i in range(actions)],
                errors=[f"e{i}" for i in range(errors)])


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(taskrun, "POLL", 0.0)


def test_a_stopped_look_with_events_still_arriving_is_not_the_end() -> None:
    # Look 1 paired a stopped status with events read mid-turn; the error came after.
    replay = Replay([stopped(1), stopped(2, errors=1), stopped(2, errors=1)])
    turn, error = runner(replay)._wait_turn("marker")
    assert error is None and turn is not None
    assert (turn.actions, turn.errors, replay.calls) == (["a0", "a1"], ["e0"], 3)


def test_a_running_look_between_two_stopped_ones_starts_over() -> None:
    running = Turn(done=False, state="running", actions=["a0"])
    replay = Replay([stopped(1), running, stopped(1), stopped(1)])
    turn, _ = runner(replay)._wait_turn("marker")
    assert turn is not None and replay.calls == 4


def test_a_turn_that_never_settles_returns_the_last_look_at_the_budget() -> None:
    replay = Replay([Turn(done=False, state="running")])
    turn, error = runner(replay, budget=0.05)._wait_turn("marker")
    assert turn is not None and not turn.done and error is None
