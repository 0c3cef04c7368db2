"""Agent Canvas (npm `@openhands/agent-canvas` 1.x, image `ghcr.io/openhands/agent-canvas`).

Facts (docs/canvas.md, with sources): one container runs an ingress on PORT (8000) in
front of the agent-server (127.0.0.1:18000) and the automation server (18001). The client
talks to the ingress only, with the stack's one key in `X-Session-API-Key` (the harness
sets it with LOCAL_BACKEND_API_KEY: CANVAS.api_key_env); `/ready` answers 200 once the
agent-server has started (503 while it initialises, 502 from the ingress before it
listens). There is no app server between the client and the agent-server, and no settings
call: each conversation carries its LLM (`POST /api/conversations`, `agent.llm` with
model, base_url, api_key), so `store_settings` only remembers it for the next create.

The agent's tools run in the agent-server's own process (`LocalWorkspace`): the runtime is
the app container itself; nothing calls back across containers. The events are the
agent-server's (`/api/conversations/{id}/events/search`), the same kinds V1's sandbox
stores, so a turn is read as V1 reads one (v1.turn_from_events).

`latest` names it (generations.CANVAS); its cells start the documented `docker run` with no
key set, and the harness reads the key the entrypoint generated, as a user would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.errors import UnexpectedAnswer
from harness.generations import CANVAS, Generation
from harness.openhands import Callbacks, FailureLog, LlmSettings, RuntimeState, Turn
from harness.openhands.http import AppClient
from harness.openhands.v1 import paged, turn_from_events

if TYPE_CHECKING:
    import httpx

CREATE_TIMEOUT = 180.0  # beyond the Docker conversation runtime's own 120 s wait
AGENT_SERVER_PORT = 18000  # config/defaults.json ports.agentServer (1.16.0, 1.20.0)
KEY_HEADER = "X-Session-API-Key"  # agent-server dependencies.py, the entrypoint's one credential
# The tools a conversation asks for: the SDK agent's default set without the browser
# (openhands-tools 1.44.0 tools/preset/default.py) [inferred: the Canvas UI's own choice is
# not read here]. The finish tool is the agent's own.
TOOLS = ("terminal", "file_editor", "task_tracker")
# What the official entrypoint logs when a backend did not come up, or the ingress went away
# (docker/entrypoint.sh wait_for_port and its last lines; assets/canvas-entrypoint.sh words them alike).
_FAILURE_LINES = re.compile(r"^.*(?:WARNING: (?:Agent Server|Automation Server) on port \d+ did not become ready "
                            r"within \d+s|ERROR: Static server \(PID \d+\) exited|Cannot find agent-server binary).*$",
                            re.M)
# ConversationExecutionStatus (sdk conversation/state.py): a conversation in these is over.
_FAILED = {"error", "stuck"}


class CanvasFailureLog:
    """The entrypoint's own line naming the part that did not start."""

    def line(self, app_logs: str) -> str | None:
        found = _FAILURE_LINES.findall(app_logs)
        return found[-1].strip()[:300] if found else None


class CanvasRules:
    """The runtime is the app's own container: no name of its own, the agent-server on the
    container's loopback, no callbacks between containers."""

    callbacks: Callbacks | None = None

    def __init__(self, gen: Generation = CANVAS) -> None:
        self.gen = gen
        self.failure_log: FailureLog | None = CanvasFailureLog()

    def runtime_container_name(self, conversation_id: str) -> str | None:
        """None: no container is started per conversation (the cell's runtime is its app)."""
        return None

    def session_key(self, app_env: dict[str, str], read: Callable[[str], str | None]) -> str | None:
        """The stack's key as its entrypoint chooses it: OH_SESSION_API_KEYS_0, else
        LOCAL_BACKEND_API_KEY, else the one it generated and kept under
        $HOME/.openhands/agent-canvas/api-key.txt (the documented `docker run` sets none)."""
        for name in ("OH_SESSION_API_KEYS_0", "LOCAL_BACKEND_API_KEY"):
            if app_env.get(name):
                return app_env[name]
        kept = read(f"{app_env.get('HOME') or '/home/openhands'}/.openhands/agent-canvas/api-key.txt")
        return kept.strip() if kept and kept.strip() else None

    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None:
        """Where the ingress reaches the agent-server: the container's own loopback, on the
        port the entrypoint gives it (AGENT_SERVER_PORT, default 18000)."""
        return f"http://127.0.0.1:{app_env.get('AGENT_SERVER_PORT') or AGENT_SERVER_PORT}"


class AgentServerFailureLog:
    """The server's own line naming where it binds (agent_server/__main__.py, from 1.37.1:
    127.0.0.1 unless a session key is set)."""

    def line(self, app_logs: str) -> str | None:
        found = re.findall(r"^.*Starting OpenHands Agent Server on \S+.*$", app_logs, re.M)
        return found[-1].strip()[:300] if found else None


class AgentServerRules(CanvasRules):
    """The agent-server alone (generations.AGENT_SERVER): the runtime is the server's own
    container, at the port it serves; its key is what its deployment sets, or none, and then
    it asks none (agent_server/config.py session_api_keys, dependencies.py)."""

    def __init__(self, gen: Generation = CANVAS) -> None:
        super().__init__(gen)
        self.failure_log = AgentServerFailureLog()

    def session_key(self, app_env: dict[str, str], read: Callable[[str], str | None]) -> str | None:
        """OH_SESSION_API_KEYS_0, else SESSION_API_KEY; "" when neither is set: no key is asked."""
        return next((app_env[n] for n in ("OH_SESSION_API_KEYS_0", "SESSION_API_KEY") if app_env.get(n)), "")

    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None:
        return f"http://127.0.0.1:{self.gen.app_port}"


class CanvasClient:
    def __init__(self, base_url: str, timeout: float = 30.0, gen: Generation = CANVAS,
                 api_key: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self._gen = gen
        self._app = AppClient(base_url, timeout, {KEY_HEADER: api_key} if api_key else None, transport)
        self._call = self._app.call
        self._llm: LlmSettings | None = None

    def healthy(self) -> bool:
        return self._app.answers(self._gen.health_path)

    def authenticate(self, key: str) -> None:
        self._app.headers[KEY_HEADER] = key

    def store_settings(self, llm: LlmSettings) -> None:
        self._llm = llm

    def create_conversation(self, message: str) -> str:
        path = "/api/conversations"
        if self._llm is None:
            raise UnexpectedAnswer("POST", path, "no LLM settings stored before the conversation", "")
        body = {
            "agent": {"kind": "Agent", "llm": {"model": self._llm.model, "base_url": self._llm.base_url,
                                               "api_key": self._llm.api_key, "usage_id": "agent"},
                      "tools": [{"name": name} for name in TOOLS]},
            "workspace": {"kind": "LocalWorkspace", "working_dir": self._gen.workspace},
            "initial_message": {"role": "user", "content": [{"type": "text", "text": message}], "run": True},
        }
        # In a Docker conversation runtime the server answers once the conversation's own
        # container is healthy, or after its 120 s startup timeout (docs/runtimes.md).
        answer = self._call("POST", path, json=body, timeout=CREATE_TIMEOUT)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise UnexpectedAnswer("POST", path, "no conversation id", answer)
        return str(uuid.UUID(str(answer["id"])))

    def _info(self, conversation_id: str) -> dict[str, Any]:
        path = f"/api/conversations/{conversation_id}"
        info = self._call("GET", path)
        if not isinstance(info, dict):
            raise UnexpectedAnswer("GET", path, "not an object", info)
        return info

    def runtime_state(self, conversation_id: str) -> RuntimeState:
        """Ready as soon as the agent-server holds the conversation; an error or stuck
        conversation is the agent's state, said as the app's error."""
        info = self._info(conversation_id)
        status = str(info.get("execution_status"))
        error = f"conversation {status}" if status in _FAILED else None
        return RuntimeState(ready=error is None, status=f"execution {status}", error=error, raw={"conversation": info})

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        return paged(self._call, f"/api/conversations/{conversation_id}/events/search")

    def send_message(self, conversation_id: str, text: str) -> None:
        self._call("POST", f"/api/conversations/{conversation_id}/events",
                   json={"role": "user", "content": [{"type": "text", "text": text}], "run": True})

    def turn(self, conversation_id: str, after: str | None) -> Turn:
        # The status first: once stopped, every event of the turn is already stored.
        status = str(self._info(conversation_id).get("execution_status"))
        return turn_from_events(self.events(conversation_id), after, status)

    def close(self) -> None:
        self._app.close()
