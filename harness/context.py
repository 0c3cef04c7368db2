"""What the controller decided for a run and every worker needs: the run's id and folder,
the matrix (as the text it was read from), the images, the host, the flags. It reaches xdist
workers in memory through `workerinput` (plugin.py), secrets included, never through a file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable

from pydantic import BaseModel, Field, field_validator

from harness import matrix
from harness.matrix import Matrix
from harness.model import Host, ImageFailure, ImageSet
from harness.secrets import conceal


class RunContext(BaseModel):
    run_id: str
    out: str
    matrix_path: str
    # parsed again in each worker from this text, not from the file (its lines may hold values)
    matrix_text: str = Field(repr=False)
    task_files: dict[str, str] = Field(default_factory=dict, repr=False)  # the task files it names, as read
    backend: str
    app_env: dict[str, str] = Field(repr=False)  # --app-env: Secrets, in memory only (secrets.py)
    only: list[str] = Field(default_factory=list)
    started_at: str
    host: Host = Field(default_factory=Host)
    images: dict[str, ImageSet | ImageFailure] = Field(default_factory=dict)
    swept: str = ""
    remedies: bool = False  # rerun failed cells with the known fixes for their cause
    remedy_names: list[str] = Field(default_factory=list)  # --remedy: only these (empty: every known one)
    llm: str = "scripted"  # scripted | real (the key itself stays in the environment)
    boot_slots: int = 1  # boots the machine admits at once (admission.py), decided once per run
    boot_slots_why: str = ""

    @field_validator("app_env")
    @classmethod
    def _secret(cls, env: dict[str, str]) -> dict[str, str]:
        # JSON from the controller gives plain strings: each worker keeps them secret again
        return conceal(env, "--app-env")

    def matrix(self, run_command: Callable[[list[str], dict[str, str]], tuple[int, str, str]] | None = None
               ) -> Matrix:
        """The matrix as the controller read it; `run_command`: matrix.parse's."""
        return matrix.parse(tomllib.loads(self.matrix_text), self.matrix_path, self.task_files, run_command)
