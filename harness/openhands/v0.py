"""V0 API (0.6x): `/api/settings`, `/api/conversations`, action-execution runtime.

Facts (openhands/server/routes/*.py at 0.62.0): settings must exist before a
conversation can be created; the runtime starts in the background after
`POST /api/conversations`; on a connect timeout `runtime_status` stays at
`STATUS$STARTING_RUNTIME` forever, so the caller must keep its own clock.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from harness.errors import UnexpectedAnswer
from harness.generations import V0, Generation
from harness.openhands import Callbacks, FailureLog, LlmSettings, RuntimeState, Turn
from harness.openhands.http import AppClient, socket_call

if TYPE_CHECKING:
    import httpx

_WAITING_RE = re.compile(r"Waiting for client to become ready at (\S+?)(?:\.\.\.)?\s*$", re.M)
# What DockerRuntime and the session log when the runtime did not start (OpenHands' docker_runtime.py,
# agent_session.py, session.py at 0.62.0); the runtime_status over REST stays STARTING_RUNTIME.
_FAILED_RE = re.compile(r"^.*(?:FAILED to start container|Runtime initialization failed|Error creating agent_session)"
                        r".*$", re.M)

# AgentState values (openhands/core/schema/agent.py) after which the agent waits for the user
_AGENT_STOPPED = {"finished", "awaiting_user_input", "error", "stopped", "rejected", "paused"}

# runtime_status values after which the runtime will not become ready on its own
_TERMINAL = {
    "STATUS$ERROR", "STATUS$ERROR_RUNTIME_DISCONNECTED", "STATUS$ERROR_MEMORY",
}


class V0FailureLog:
    def line(self, app_logs: str) -> str | None:
        found = _FAILED_RE.findall(app_logs)
        return found[-1].strip()[:400] if found else None


class V0Rules:
    """Where a V0 app looks for its runtime; its runtime never calls the app back."""

    callbacks: Callbacks | None = None
    failure_log: FailureLog | None = V0FailureLog()

    def __init__(self, gen: Generation = V0) -> None:
        self.gen = gen

    def runtime_container_name(self, conversation_id: str) -> str:
        return f"{V0.runtime_prefix}{conversation_id}"

    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None:
        """The URL DockerRuntime polls: from its own log line when present, else its
        formula (`local_runtime_url` or `http://$DOCKER_HOST_ADDR`, then `:port`)."""
        found = _WAITING_RE.findall(app_logs)
        if found:
            return str(found[-1])
        if runtime_attrs is None:
            return None
        env = dict(e.partition("=")[::2] for e in (runtime_attrs.get("Config") or {}).get("Env") or [])
        base = (f"http://{app_env['DOCKER_HOST_ADDR']}" if app_env.get("DOCKER_HOST_ADDR")
                else app_env.get("SANDBOX_LOCAL_RUNTIME_URL", "http://localhost"))
        return f"{base}:{env['port']}" if env.get("port") else None


class V0Client:
    def __init__(self, base_url: str, timeout: float = 15.0, gen: Generation = V0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._gen = gen  # V0 as the cell's release has it (Generation.at)
        self._app = AppClient(base_url, timeout, transport=transport)
        self._from_elsewhere = transport is not None
        self._base_url, self._timeout = base_url, timeout
        self._call = self._app.call

    def healthy(self) -> bool:
        return self._app.answers(self._gen.health_path)

    def store_settings(self, llm: LlmSettings) -> None:
        self._call("POST", "/api/settings", json={
            "llm_model": llm.model, "llm_api_key": llm.api_key, "llm_base_url": llm.base_url,
            "agent": "CodeActAgent", "confirmation_mode": False,
        })

    def create_conversation(self, message: str) -> str:
        return self._create({"initial_user_msg": message})

    def replay_conversation(self, trajectory: list[dict[str, Any]]) -> str:
        """A conversation that replays a recorded trajectory with no LLM (ReplayManager, 0.62.0):
        `replay_json` is the list as a string, its first event the user's message."""
        return self._create({"replay_json": json.dumps(trajectory)})

    def _create(self, request: dict[str, Any]) -> str:
        body = self._call("POST", "/api/conversations", json=request)
        cid = body.get("conversation_id") if isinstance(body, dict) else None
        if not cid:
            raise UnexpectedAnswer("POST", "/api/conversations", "no conversation_id", body)
        return str(cid)

    def runtime_state(self, conversation_id: str) -> RuntimeState:
        info = self._call("GET", f"/api/conversations/{conversation_id}")
        if not isinstance(info, dict):
            raise UnexpectedAnswer("GET", f"/api/conversations/{conversation_id}", "not an object", info)
        status = str(info.get("status"))
        runtime = str(info.get("runtime_status"))
        error = runtime if runtime in _TERMINAL or status == "ERROR" else None
        return RuntimeState(ready=runtime == "STATUS$READY", status=f"{status}/{runtime}",
                            error=error, raw=info)

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start = 0
        path = f"/api/conversations/{conversation_id}/events"
        while True:
            page = self._call("GET", path, params={"start_id": start, "limit": 100})
            events = page.get("events") if isinstance(page, dict) else None
            if not isinstance(events, list) or not all(isinstance(e, dict) and "id" in e for e in events):
                raise UnexpectedAnswer("GET", path, "no list of events with ids", page)
            out += events
            if not page.get("has_more") or not events:
                return out
            start = int(events[-1]["id"]) + 1

    def send_message(self, conversation_id: str, text: str) -> None:
        if self._gen.message_call == "socket":  # before 0.59.0 (generations.V0.before)
            if self._from_elsewhere:  # socket.io goes from this process: it would not be the caller's call
                raise UnexpectedAnswer("POST", "socket.io oh_user_action", "a caller cell sends its messages from the "
                                       "caller's container, over HTTP, which releases before 0.59 do not take", "")
            # listen_socket.py: joined with the conversation's id, the events after
            # latest_event_id replayed to us (none: an id past them), then a MessageAction
            # as the frontend's createChatMessage words it
            message = {"action": "message", "args": {"content": text, "image_urls": [], "file_urls": []}}
            socket_call(self._base_url, {"conversation_id": conversation_id, "latest_event_id": str(2**31)},
                        "oh_user_action", message, self._timeout)
            return
        # routes/conversation.py add_message: a MessageAction from the user
        self._call("POST", f"/api/conversations/{conversation_id}/message", json={"message": text})

    def turn(self, conversation_id: str, after: str | None) -> Turn:
        return turn_from_events(self.events(conversation_id), after)

    def close(self) -> None:
        self._app.close()


def runtime_uid(env: dict[str, str]) -> tuple[int, str]:
    """The uid of the user the docker runtime runs the agent as, and why: RUNTIME_UID, else
    1000 (`openhands`) unless RUN_AS_OPENHANDS is false (root). SANDBOX_USER_ID does not set
    it: DockerRuntime passes no override (openhands/runtime/utils/command.py
    get_action_execution_server_startup_command, runtime/impl/docker/docker_runtime.py, 0.62.0);
    the runtime creates that user and chowns its workspace to it (runtime_init.py)."""
    if (raw := env.get("RUNTIME_UID", "")).isdigit() and int(raw):
        return int(raw), f"RUNTIME_UID={raw}"
    if env.get("RUN_AS_OPENHANDS", "true").lower() in ("false", "0", "no"):
        return 0, "root: RUN_AS_OPENHANDS=false"
    return 1000, "openhands, as RUN_AS_OPENHANDS defaults" + (
        f"; SANDBOX_USER_ID={env['SANDBOX_USER_ID']} does not set it" if env.get("SANDBOX_USER_ID") else "")


def _is_user_message(e: dict[str, Any], text: str | None) -> bool:
    return (e.get("source") == "user" and e.get("action") == "message"
            and (text is None or text in str((e.get("args") or {}).get("content"))))


def turn_from_events(events: list[dict[str, Any]], after: str | None) -> Turn:
    """A turn from V0 event dicts (the API's events, or a saved trajectory)."""
    t = Turn(done=False, state="waiting for the message")
    starts = [i for i, e in enumerate(events) if _is_user_message(e, after)]
    if not starts:
        return t
    for e in events[(starts[0] if after is None else starts[-1]) + 1:]:
        if e.get("observation") == "agent_state_changed":
            t.state = str((e.get("extras") or {}).get("agent_state"))
            t.done = t.state in _AGENT_STOPPED
        elif e.get("source") == "agent" and e.get("action") == "message":
            t.say("message", str((e.get("args") or {}).get("content") or ""))
        elif e.get("source") == "agent" and e.get("action") and e["action"] != "system":
            args = e.get("args") or {}
            what = (" ".join(str(args[k]) for k in ("command", "path") if args.get(k)) or args.get("code")
                    or args.get("final_thought"))
            t.actions.append(f"{e['action']}: {str(what or '')[:120]}")
            if e["action"] == "finish":  # events/action/agent.py AgentFinishAction
                t.say("finish", str(args.get("final_thought") or ""))
                t.say("finish_outputs", str((args.get("outputs") or {}).get("content") or ""))
                t.say("finish_thought", str(args.get("thought") or ""))
        elif e.get("observation") == "error":
            t.errors.append(str(e.get("content") or e.get("message")))
        elif e.get("observation") in _NOT_ANSWERS:
            continue
        elif e.get("observation") and e.get("source") != "user":
            t.outputs.append(str(e.get("content") or ""))
            if (why := _unread(e)) is not None:
                t.unread.append(why)
    return t


# Observations that answer no action of the agent's: the recall's (NullObservation, content '').
_NOT_ANSWERS = {"null"}
# BashSession.execute (runtime/utils/bash.py at 0.62.0) takes a pane that still ends with the
# previous prompt for the command's end when it looks before tmux has echoed the command: it
# then answers at once with the text before that prompt (nothing, after the screen was
# cleared) under this prefix, while the command goes on to run in the shell.
_TRUNCATED = "[Previous command outputs are truncated."


def _unread(e: dict[str, Any]) -> str | None:
    """Why a command's observation holds none of its output, when the release's own
    metadata shows the output was never read."""
    extras = e.get("extras") or {}
    meta = extras.get("metadata") or {}
    if e.get("observation") != "run" or str(e.get("content") or "").strip() or \
            not str(meta.get("prefix") or "").startswith(_TRUNCATED):
        return None
    return (f"event {e.get('id')} at {e.get('timestamp')}: OpenHands answered `{str(extras.get('command'))[:120]}` "
            f"with no output and the prefix {str(meta.get('prefix')).strip()!r} (exit code {meta.get('exit_code')}, "
            f"pid {meta.get('pid')}): its bash session read the prompt before the command, not the command's output")
