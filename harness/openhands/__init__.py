"""One adapter per OpenHands API generation (harness/generations.py names them), in two
parts of one interface each, blind to the image backend and importing neither docker nor
the image code:

- its rules (`Rules`): pure functions of what the app and its runtime show (names, URLs,
  log lines, environments), needing no app to call, so the headless entry point and the
  tests use them alone;
- its client (`Client`): the app's HTTP API, which translates httpx's errors and answers
  of the wrong shape into harness.errors.AdapterError at its boundary.

What only one generation has is a part of its own, never a stub in the other's: the
callbacks a V1 sandbox makes (`Rules.callbacks`), the failure line a V0 app logs
(`Rules.failure_log`), V0's replay of a trajectory (`Replays`), V1's two event counts
(`CountsEvents`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from harness.generations import Generation

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class LlmSettings:
    model: str
    api_key: str
    base_url: str


# How a generation words a runtime failure, normalised (see each adapter):
#   startup-grace  the app gave up after its own startup grace for the runtime
#   start-failed   the daemon refused to start the runtime the app asked for
#   port-taken     ... because the host port the app chose was taken
Failure = Literal["startup-grace", "start-failed", "port-taken"]
# How the daemon words a host port it cannot publish (its allocator; the userland proxy's
# bind; on a rootless daemon RootlessKit's port driver, whose PortManager.AddPort refuses a
# parent port it still holds for another spec with "conflict with ID N", from its
# portutil.ValidatePortSpec), whether the app passes it on (V1) or the daemon's State.Error
# says it (V0).
PORT_TAKEN_WORDS = ("port is already allocated", "address already in use", "conflict with ID")


def port_taken(text: str | None) -> bool:
    return any(words in (text or "") for words in PORT_TAKEN_WORDS)


# How an app words a Docker daemon it cannot reach: OpenHands' own line (0.x docker_runtime.py
# _init_docker_client, at 0.62.0), then docker-py's (`docker.from_env()`, which both
# generations' runtime starters call) and the docker CLI's, whose text names the socket's or
# endpoint's error, then a docker CLI that is not there at all.
_DOCKER_FAILURE = (re.compile(r"^.*Launch docker client failed.*$", re.M),
                   re.compile(r"^.*(?:Error while fetching server API version|Cannot connect to the Docker daemon"
                              r"|permission denied while trying to connect to the Docker daemon).*$", re.M),
                   # the agent-server's Docker runtimes run the docker CLI (docker_runtime/registry.py)
                   # (the words alone: a JSON log line around them runs to kilobytes)
                   re.compile(r"FileNotFoundError: \[Errno 2\] No such file or directory: 'docker'"))


def docker_failure(app_logs: str) -> str | None:
    """The app's own lines where it fails to reach Docker (the last of each kind), or None."""
    found = [hits[-1].strip()[:400] for pattern in _DOCKER_FAILURE if (hits := pattern.findall(app_logs))]
    return " | ".join(found) or None


@dataclass(frozen=True)
class RuntimeState:
    """What the app says about a conversation's runtime, normalised across generations."""

    ready: bool
    status: str  # the app's own words, e.g. "STARTING/STATUS$STARTING_RUNTIME"
    error: str | None = None  # set when the app itself reports a terminal error
    failure: Failure | None = None  # what kind of error, when the adapter can tell
    raw: dict[str, Any] = field(default_factory=dict)


# What the agent said in a turn, by kind (Turn.said; a task file's check.messages_from):
#   message         a plain message, with no tool call (V0 MessageAction, V1 MessageEvent, from the agent)
#   finish          the finish tool's `message` (V0 AgentFinishAction.final_thought, V1 FinishAction.message)
#   finish_outputs  V0 AgentFinishAction.outputs["content"] (BrowsingAgent sets it; CodeActAgent never; V1 none)
#   finish_thought  the text the model sent with its finish call (V0 AgentFinishAction.thought, V1 ActionEvent.thought)
SAID_KINDS = ("message", "finish", "finish_outputs", "finish_thought")


@dataclass
class Turn:
    """One agent turn: the events after the user message that holds a given text (the
    task's marker; None: the first user message), normalised across generations. Keyed on
    the message itself, not on an event count: events of the turn before may still arrive
    after that turn looked done."""

    done: bool  # the agent stopped: finished, waiting for the user, or in error
    state: str  # the generation's own word for where the agent is
    actions: list[str] = field(default_factory=list)  # "tool: argument" as the agent asked
    outputs: list[str] = field(default_factory=list)  # what the runtime answered, in order
    errors: list[str] = field(default_factory=list)  # error observations / agent errors
    messages: list[str] = field(default_factory=list)  # what the agent said, every kind, in order
    said: list[tuple[str, str]] = field(default_factory=list)  # the same, as (kind in SAID_KINDS, text)
    # Commands the runtime answered with no output while its own framing says it never read
    # the command's (V0: a "truncated" prefix on an empty observation), as evidence lines.
    unread: list[str] = field(default_factory=list)

    def say(self, kind: str, text: str) -> None:
        if text:
            self.messages.append(text)
            self.said.append((kind, text))


class Callbacks(Protocol):
    """Where a runtime calls its app back, and what it logs of those calls (V1)."""

    def target(self, app_env: dict[str, str]) -> tuple[str, int]: ...  # the app's host and port, from the sandbox
    def urls(self, runtime_env: dict[str, str]) -> list[tuple[str, str]]: ...  # (label, url) it posts to
    def log(self, runtime_logs: str) -> list[str]: ...  # its own lines about those calls
    @property
    def health_path(self) -> str: ...  # the app's path that answers 200 when it is up, asked through a proxy


class FailureLog(Protocol):
    """The app's own log line naming a runtime that did not start (V0: its REST status
    stays STARTING_RUNTIME, the log says why)."""

    def line(self, app_logs: str) -> str | None: ...


class Rules(Protocol):
    """A generation's pure facts about its runtime: no app is called."""

    callbacks: Callbacks | None
    failure_log: FailureLog | None

    def runtime_container_name(self, conversation_id: str) -> str | None: ...
    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None: ...


class Client(Protocol):
    """A generation's app API, for one app."""

    def healthy(self) -> bool: ...
    def store_settings(self, llm: LlmSettings) -> None: ...
    def create_conversation(self, message: str) -> str: ...
    def runtime_state(self, conversation_id: str) -> RuntimeState: ...
    def events(self, conversation_id: str) -> list[dict[str, Any]]: ...
    def send_message(self, conversation_id: str, text: str) -> None: ...
    def turn(self, conversation_id: str, after: str | None) -> Turn: ...
    def close(self) -> None: ...


@runtime_checkable
class Replays(Protocol):
    """A client whose app replays a recorded trajectory with no LLM (V0's replay_json)."""

    def replay_conversation(self, trajectory: list[dict[str, Any]]) -> str: ...


@runtime_checkable
class NamesRuntime(Protocol):
    """A client that tells the runtime's name as the app says it (an app that names it at random)."""

    def runtime_name(self, conversation_id: str) -> str | None: ...


@runtime_checkable
class Authenticates(Protocol):
    """A client whose app wants a key its deployment made (Agent Canvas's session key, kept in
    the container when no setting gives it): the cell hands it over once the app is up."""

    def authenticate(self, key: str) -> None: ...


@runtime_checkable
class KeepsKey(Protocol):
    """Rules that know where the app keeps its key: a setting of its environment, else a file
    in its container (`read` gives a file's text, or None)."""

    def session_key(self, app_env: dict[str, str], read: Callable[[str], str | None]) -> str | None: ...


@runtime_checkable
class CountsEvents(Protocol):
    """A client that tells how many events of a conversation the sandbox holds and how many
    reached the app (V1: the webhook's delivery, side by side)."""

    def event_counts(self, conversation_id: str) -> tuple[int | None, int | None]: ...


def rules_for(gen: Generation) -> Rules:
    """The generation's rules for the release `gen` describes (Generation.at)."""
    rules: Rules = gen.load(gen.rules)(gen)
    return rules


def client_for(gen: Generation, base_url: str, transport: httpx.BaseTransport | None = None) -> Client:
    """The generation's client, for the release `gen` describes (Generation.at): the calls
    releases of one generation make differently are chosen from its facts. `transport`: the
    requests sent from elsewhere than this process (a caller's container)."""
    client: Client = gen.load(gen.client)(base_url, gen=gen, **({"transport": transport} if transport else {}))
    return client
