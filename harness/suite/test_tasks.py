"""Real agent work on every connected cell (`TAG-MODE-TASK`): did the task's effect happen
in the runtime? Cells that did not connect skip their tasks with the connect cause."""

import pytest

from harness.model import TaskResult
from harness.plugin import describe_task


def test_task(task_result: TaskResult) -> None:
    if task_result.verdict != "pass":
        pytest.fail(describe_task(task_result), pytrace=False)
