"""The harness's exceptions, one per way a run can go wrong (exit codes: docs/exit-codes.md,
mapped in one place, harness/workflow.py).

HarnessError
 ├── InputError            bad matrix file, task file, flag or filter
 ├── InfraError            the harness could not do its job
 │    ├── DockerUnavailable    no daemon, no permission, DOCKER_HOST nowhere
 │    ├── ImageUnavailable     an image could not be pulled or built (its cells are `error`)
 │    ├── OutputError          a result or report could not be written (disk full...)
 │    └── TaskSetupError       a task's files, commands or secrets could not be put in place
 │                             (that task is `error`)
 └── AdapterError          talking to an app or agent-server failed (translated from
      │                    httpx and from the answers' shapes in harness/openhands/, never
      │                    leaked as httpx's, KeyError or ValueError)
      ├── ApiError             it answered with an error status
      ├── UnexpectedAnswer     it answered 2xx with a body of another shape than the
      │                        release's API gives (a field missing, a list not of one)
      └── AppUnreachable       no answer at all (refused, timed out, reset)

Budget overruns are not exceptions: a cell that runs out of time gets the cause
`budget-exceeded` in its verdict.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of everything the harness raises on purpose."""


class InputError(HarnessError):
    """The user gave us something we cannot use; the message names the file, key or flag."""


class InfraError(HarnessError):
    """The harness itself could not set something up (daemon, image, network, disk)."""


class DockerUnavailable(InfraError):
    """The Docker daemon cannot be reached or used."""


class ImageUnavailable(InfraError):
    """An image could not be pulled or built; cells that need it are `error`."""

    def __init__(self, message: str, resolved_version: str | None = None) -> None:
        super().__init__(message)
        self.resolved_version = resolved_version


class OutputError(InfraError):
    """A result or report file could not be written; the previous file, if any, is intact."""


class PlacementError(InfraError):
    """A deployment cannot run as written on this machine without touching something of the
    user's (a folder it mounts at its own path exists here): the cell is `error`, saying so."""


class TaskSetupError(InfraError):
    """What a task needs in the runtime (a seeded file, a setup command, a secret) could
    not be put there: the task is `error`, never a `fail` of OpenHands'."""


class AdapterError(HarnessError):
    """A call to an app's (or agent-server's) API did not give a usable answer."""


class ApiError(AdapterError):
    """The API answered with an error status."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:300]}")


class UnexpectedAnswer(AdapterError):
    """The API answered, successfully, with a body the adapter's facts do not describe."""

    def __init__(self, method: str, url: str, what: str, body: object) -> None:
        super().__init__(f"{method} {url}: {what} (answer: {str(body)[:300]})")


class AppUnreachable(AdapterError):
    """The API did not answer: refused, timed out or cut off."""
