"""What a cell is asked to do: its images, settings, budgets and tasks (`CellPlan`), made
by runner.py from the matrix and the run, read by every part of the cell."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.generations import Generation
from harness.matrix import Cell
from harness.model import ImageSet
from harness.openhands import LlmSettings
from harness.tasks import CATALOG, Task
from harness.tasks.taskrun import LlmChoice

# The connect verdict needs no model; a key must be non-empty for the API to accept the
# conversation, and the base URL points at the app's own loopback where nothing listens.
NO_LLM = LlmSettings(model="openai/gpt-4o", api_key="oh-matrix-no-llm", base_url="http://127.0.0.1:9/v1")


@dataclass
class CellPlan:
    run_id: str
    cell: Cell
    images: ImageSet
    env: dict[str, str]  # matrix env + mode env + --app-env, in that order of precedence
    connect_budget: float
    app_budget: float
    message: str = "Say hello."
    secrets: frozenset[str] = field(default_factory=frozenset)
    tasks: list[str] = field(default_factory=list)  # task names, run once connected
    catalog: dict[str, Task] = field(default_factory=lambda: dict(CATALOG))  # the run's tasks by name
    llm: LlmChoice = field(default_factory=LlmChoice)
    task_budget: float = 120.0
    boot_slots: int = 1  # boots this machine admits at once (admission.py)
    alone: bool = False  # boot with the machine to itself: every slot held
    # ... held by the caller already (remedies.search holds them around a host change, so no
    # other cell boots while this machine is changed): the boot does not ask for them again
    slots_held: bool = False
    remedies: bool = False  # a caller cell proves its caller's fixes itself (--remedies)
    remedy_names: frozenset[str] = frozenset()  # --remedy: only these (empty: every one that applies)
    app_port: int | None = None  # publish the app here instead of a port the harness or Docker picks
    record_to: Path | None = None  # save the passing tasks' trajectories here (python -m harness.devtools.record)

    @property
    def gen(self) -> Generation:
        """The cell's API generation as its release has it (Generation.at): the facts that
        differ between releases of one generation are the resolved version's."""
        return self.cell.target.generation.at(self.images.resolved_version)


def runtime_kwargs(user_value: str | None, lbl: dict[str, str], setting: str) -> str:
    """Labels on the runtimes OpenHands starts, through its own pass-through
    (`sandbox.docker_runtime_kwargs`, a dict handed to `containers.run`): lets a sweep find
    a runtime whose cell died. A user's own kwargs are kept; labels don't touch networking.
    `setting`: the generation's name for it (Generation.label_env), for the error."""
    kwargs: dict[str, Any] = {}
    if user_value:
        try:
            parsed = ast.literal_eval(user_value)
        except (ValueError, SyntaxError):
            parsed = None
        if not isinstance(parsed, dict):
            raise InputError(f"{setting}={user_value!r}: expected a Python dict literal, "
                             "as OpenHands reads it")
        kwargs = parsed
    kwargs["labels"] = {**(kwargs.get("labels") or {}), **lbl}
    return repr(kwargs)
