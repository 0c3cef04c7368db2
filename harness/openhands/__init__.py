"""Adapters: one per OpenHands API generation, same interface, blind to the image backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class LlmSettings:
    model: str
    api_key: str
    base_url: str


@dataclass(frozen=True)
class RuntimeState:
    """What the app says about a conversation's runtime, normalised across generations."""

    ready: bool
    status: str  # the app's own words, e.g. "STARTING/STATUS$STARTING_RUNTIME"
    error: str | None = None  # set when the app itself reports a terminal error
    raw: dict[str, Any] = field(default_factory=dict)


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


class Adapter(Protocol):
    api: str
    health_path: str

    def store_settings(self, llm: LlmSettings) -> None: ...
    def create_conversation(self, message: str) -> str: ...
    def runtime_state(self, conversation_id: str) -> RuntimeState: ...
    def events(self, conversation_id: str) -> list[dict[str, Any]]: ...
    def send_message(self, conversation_id: str, text: str) -> None: ...
    def turn(self, conversation_id: str, after: str | None) -> Turn: ...
    def runtime_container_name(self, conversation_id: str) -> str: ...
    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None: ...
    def callback_target(self, app_env: dict[str, str]) -> tuple[str, int] | None: ...
    def close(self) -> None: ...


def adapter_for(api: str, base_url: str) -> Adapter:
    if api == "v0":
        from harness.openhands.v0 import V0Adapter

        return V0Adapter(base_url)
    from harness.openhands.v1 import V1Adapter

    return V1Adapter(base_url)
