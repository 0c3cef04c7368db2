"""Adapters: one per OpenHands API generation (harness/generations.py names them), same
interface, blind to the image backend. They import neither docker nor the image code, and
translate httpx's errors into harness.errors.AdapterError at their boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.generations import Generation


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
# bind), whether the app passes it on (V1) or the daemon's State.Error says it (V0).
PORT_TAKEN_WORDS = ("port is already allocated", "address already in use")


def port_taken(text: str | None) -> bool:
    return any(words in (text or "") for words in PORT_TAKEN_WORDS)


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

    def say(self, kind: str, text: str) -> None:
        if text:
            self.messages.append(text)
            self.said.append((kind, text))


class Adapter(Protocol):
    api: str
    health_path: str

    def healthy(self) -> bool: ...
    def store_settings(self, llm: LlmSettings) -> None: ...
    def create_conversation(self, message: str) -> str: ...
    def replay_conversation(self, trajectory: list[dict[str, Any]]) -> str: ...  # V0: no LLM
    def runtime_state(self, conversation_id: str) -> RuntimeState: ...
    def events(self, conversation_id: str) -> list[dict[str, Any]]: ...
    def send_message(self, conversation_id: str, text: str) -> None: ...
    def turn(self, conversation_id: str, after: str | None) -> Turn: ...
    def runtime_container_name(self, conversation_id: str) -> str: ...
    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None: ...
    def callback_target(self, app_env: dict[str, str]) -> tuple[str, int] | None: ...
    def runtime_failure(self, app_logs: str) -> str | None: ...  # the app's own line naming one
    # The generation's callbacks (V1: webhooks, MCP): where the runtime calls the app, what its
    # log says of those calls, and how many events each side holds for the conversation.
    def callback_urls(self, runtime_env: dict[str, str]) -> list[tuple[str, str]]: ...
    def callback_log(self, runtime_logs: str) -> list[str]: ...
    def event_counts(self, conversation_id: str) -> tuple[int | None, int | None]: ...
    def close(self) -> None: ...


def adapter_for(gen: Generation, base_url: str) -> Adapter:
    adapter: Adapter = gen.load(gen.adapter)(base_url)
    return adapter
