"""The harness's exceptions, one per way a run can go wrong.

HarnessError
 ├── InputError            bad matrix file, flag or filter           -> exit 2
 ├── InfraError            the harness could not do its job          -> exit 3 / cell `error`
 │    ├── DockerUnavailable    no daemon, no permission, DOCKER_HOST nowhere
 │    ├── ImageUnavailable     an image could not be pulled or built
 │    └── OutputError          a result or report could not be written (disk full...) -> exit 1
 └── ProductError          OpenHands ran and misbehaved              -> cell `fail`
      └── ApiError             the app's API refused the harness (status + body)

Budget overruns are not exceptions: a cell that runs out of time gets the cause
`budget-exceeded` in its verdict.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_DOCKER = 3


class HarnessError(Exception):
    """Base of everything the harness raises on purpose."""

    exit_code = EXIT_FAILED


class InputError(HarnessError):
    """The user gave us something we cannot use; the message names the file, key or flag."""

    exit_code = EXIT_INPUT


class InfraError(HarnessError):
    """The harness itself could not set something up (daemon, image, network)."""

    exit_code = EXIT_DOCKER


class DockerUnavailable(InfraError):
    """The Docker daemon cannot be reached or used."""


class ImageUnavailable(InfraError):
    """An image could not be pulled or built; cells that need it are `error`."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, resolved_version: str | None = None) -> None:
        super().__init__(message)
        self.resolved_version = resolved_version


class OutputError(InfraError):
    """A result or report file could not be written; the previous file, if any, is intact."""

    exit_code = EXIT_FAILED


class ProductError(HarnessError):
    """OpenHands itself did something that stops the cell."""


class ApiError(ProductError):
    """The app's HTTP API answered with an error status."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body
