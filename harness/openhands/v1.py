"""V1 API (1.x app server, `/api/v1`), agent-server sandbox.

Facts (openhands-ai 1.11.0, `openhands/app_server/`): settings at `/api/v1/settings` as a
diff; `POST /api/v1/app-conversations` returns a start task at once (status WORKING) and
the rest runs in the background; the task ends READY or ERROR (text in `detail`). A
`conversation_id` in the body also names the sandbox container
`oh-agent-server-<uuid hex>`, which is how the harness finds it. The app reaches the
sandbox at `SANDBOX_CONTAINER_URL_PATTERN` (default `http://localhost:{port}`), rewritten to
`host.docker.internal` when it runs in Docker; the sandbox calls the app back (MCP,
webhooks) at `http://host.docker.internal:{SANDBOX_HOST_PORT:-3000}` unless `OH_WEB_URL`.

After the start, the app has no route for a follow-up message: its frontend talks to the
agent-server in the sandbox at the conversation's `conversation_url` (a host port, so
`localhost` from the host) with the `session_api_key`, and so do `send_message` and
`turn` here (the app's own event copy arrives by webhook in batches of up to 30 s).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlparse

from harness.errors import AdapterError, ApiError
from harness.generations import V1
from harness.openhands import Failure, LlmSettings, RuntimeState, Turn, port_taken
from harness.openhands.http import AppClient

SANDBOX_PORT = 8000
# How 1.x words its runtime failures (OpenHands' app_server/sandbox/docker_sandbox_service.py):
# the /health check failed after SANDBOX_STARTUP_GRACE_SECONDS (default 15 s) ...
STARTUP_GRACE_MESSAGE = "Sandbox entered error state"
# ... the daemon refused to run the sandbox (start_sandbox wraps its error) ...
START_FAILED_MESSAGE = "Failed to start container"
# ... because the host port the app picked (by binding port 0 in its OWN network
# namespace, _find_unused_port) was taken on the host: openhands.port_taken.
# What the agent-server logs when it cannot call the app back (agent_server/event_service.py,
# conversation webhooks; mcp client): each attempt, the giving up, a failed MCP connect.
_CALLBACK_LOG = re.compile(r"^.*(?:Webhook post attempt \d+ failed|Failed to post events to webhook|"
                           r"Conversation webhook post attempt \d+ failed|MCP Connection Failure).*$", re.M)
_WEBHOOK_ENV = re.compile(r"OH_WEBHOOKS_(\d+)_BASE_URL")
# ConversationExecutionStatus.is_terminal (sdk/conversation/state.py) plus idle/paused: the
# agent waits for the user.
_STOPPED = {"finished", "error", "stuck", "idle", "paused", "waiting_for_confirmation"}


def failure(detail: str) -> Failure | None:
    if port_taken(detail):
        return "port-taken"
    if START_FAILED_MESSAGE in detail:
        return "start-failed"
    if STARTUP_GRACE_MESSAGE in detail:
        return "startup-grace"
    return None


class V1Adapter:
    api = V1.name
    health_path = V1.health_path

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self._app = AppClient(base_url, timeout)
        self._call = self._app.call
        self._tasks: dict[str, str] = {}  # conversation id -> start task id
        self._agents: dict[str, tuple[AppClient, str]] = {}  # conversation id -> its agent-server, path

    def healthy(self) -> bool:
        return self._app.answers(self.health_path)

    def store_settings(self, llm: LlmSettings) -> None:
        self._call("POST", "/api/v1/settings", json={"agent_settings_diff": {"llm": {
            "model": llm.model, "api_key": llm.api_key, "base_url": llm.base_url}}})

    def create_conversation(self, message: str) -> str:
        cid = uuid.uuid4().hex
        task = self._call("POST", "/api/v1/app-conversations", json={
            "conversation_id": str(uuid.UUID(cid)),
            "initial_message": {"role": "user", "content": [{"type": "text", "text": message}]},
        })
        if not task.get("id"):
            raise ApiError("POST", "/api/v1/app-conversations", 200, str(task))
        self._tasks[cid] = str(task["id"])
        return cid

    def replay_conversation(self, trajectory: list[dict[str, Any]]) -> str:
        raise AdapterError(V1.replay_skip or "no replay")

    def runtime_state(self, conversation_id: str) -> RuntimeState:
        [task] = self._call("GET", "/api/v1/app-conversations/start-tasks",
                            params={"ids": self._tasks[conversation_id]})
        task = task or {}
        status = str(task.get("status"))
        raw: dict[str, Any] = {"start_task": task}
        sandbox = ""
        if status in ("READY", "ERROR"):
            [conv] = self._call("GET", "/api/v1/app-conversations", params={"ids": conversation_id})
            if conv:
                raw["conversation"] = conv
                sandbox = f" sandbox={conv.get('sandbox_status')} execution={conv.get('execution_status')}"
        error = f"start task ERROR: {task.get('detail')}" if status == "ERROR" else None
        return RuntimeState(ready=status == "READY", status=f"start task {status}{sandbox}",
                            error=error, failure=failure(error) if error else None, raw=raw)

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if page:
                params["page_id"] = page
            data = self._call("GET", f"/api/v1/conversation/{conversation_id}/events/search", params=params)
            out += data.get("items", [])
            page = data.get("next_page_id")
            if not page:
                return out

    def _agent(self, conversation_id: str) -> tuple[AppClient, str]:
        if conversation_id not in self._agents:
            [conv] = self._call("GET", "/api/v1/app-conversations", params={"ids": conversation_id})
            url, key = (conv or {}).get("conversation_url"), (conv or {}).get("session_api_key")
            if not url or not key:
                raise ApiError("GET", "/api/v1/app-conversations", 200, "no conversation_url/session_api_key yet")
            u = urlparse(str(url))
            client = AppClient(f"{u.scheme}://{u.netloc}", 30, {"X-Session-API-Key": key})
            self._agents[conversation_id] = (client, u.path.rstrip("/"))
        return self._agents[conversation_id]

    def _agent_call(self, conversation_id: str, method: str, path: str, **kw: Any) -> Any:
        client, prefix = self._agent(conversation_id)
        return client.call(method, prefix + path, **kw)

    def send_message(self, conversation_id: str, text: str) -> None:
        # agent_server/event_router.py send_message: SendMessageRequest, run=True
        self._agent_call(conversation_id, "POST", "/events", json={
            "role": "user", "content": [{"type": "text", "text": text}], "run": True})

    def turn(self, conversation_id: str, after: str | None) -> Turn:
        # The status first: once stopped, every event of the turn is already stored.
        info = self._agent_call(conversation_id, "GET", "")
        events: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"page_id": page} if page else {})}
            data = self._agent_call(conversation_id, "GET", "/events/search", params=params)
            events += data.get("items", [])
            page = data.get("next_page_id")
            if not page:
                break
        t = Turn(done=False, state=str(info.get("execution_status")))
        starts = [i for i, e in enumerate(events) if _is_user_message(e, after)]
        if not starts:
            t.state = "waiting for the message"
            return t
        fresh = events[(starts[0] if after is None else starts[-1]) + 1:]
        for e in fresh:
            kind = e.get("kind")
            if kind == "ActionEvent":
                action = e.get("action") or {}
                what = " ".join(str(action[k]) for k in ("command", "path") if action.get(k)) or action.get("message")
                t.actions.append(f"{e.get('tool_name')}: {str(what or '')[:120]}")
                if e.get("tool_name") == V1.tools.finish:  # sdk event/llm_convertible/action.py ActionEvent
                    t.say("finish", str(action.get("message") or ""))
                    t.say("finish_thought", _text(e.get("thought")))
            elif kind == "MessageEvent" and e.get("source") == "agent":
                t.say("message", _text((e.get("llm_message") or {}).get("content")))
            elif kind == "ObservationEvent":
                obs = e.get("observation") or {}
                text = "".join(c.get("text", "") for c in obs.get("content") or [] if isinstance(c, dict))
                (t.errors if obs.get("is_error") else t.outputs).append(text)
            elif kind in ("AgentErrorEvent", "ConversationErrorEvent"):
                t.errors.append(str(e.get("error") or e.get("detail") or e))
        # The status flips back to running only once the message is picked up: a turn is
        # over when the agent answered after the message and the status says it stopped.
        answered = any(e.get("source") == "agent" or e.get("kind") in ("AgentErrorEvent", "ConversationErrorEvent")
                       for e in fresh)
        t.done = answered and t.state in _STOPPED
        return t

    def runtime_container_name(self, conversation_id: str) -> str:
        return f"{V1.runtime_prefix}{conversation_id}"

    def runtime_url(self, app_logs: str, app_env: dict[str, str],
                    runtime_attrs: dict[str, Any] | None) -> str | None:
        """Where the app reaches the sandbox: the published host port of 8000 (or 8000
        itself on the host network) in the app's URL pattern, localhost rewritten."""
        if runtime_attrs is None:
            return None
        ports = (runtime_attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bound = ports.get(f"{SANDBOX_PORT}/tcp")
        if bound:
            port = int(bound[0]["HostPort"])
        elif (runtime_attrs.get("HostConfig") or {}).get("NetworkMode") == "host":
            port = SANDBOX_PORT
        else:
            return None
        pattern = app_env.get("SANDBOX_CONTAINER_URL_PATTERN") or "http://localhost:{port}"
        url = pattern.format(port=port)
        u = urlparse(url)
        if u.hostname == "localhost":  # replace_localhost_hostname_for_docker
            url = url.replace("//localhost", "//host.docker.internal", 1)
        return url

    def callback_target(self, app_env: dict[str, str]) -> tuple[str, int] | None:
        """Where the sandbox calls the app back (MCP at web_url, webhooks)."""
        web = app_env.get("OH_WEB_URL")
        if web:
            u = urlparse(web)
            return (u.hostname or "", u.port or (443 if u.scheme == "https" else 80))
        return ("host.docker.internal", int(app_env.get("SANDBOX_HOST_PORT") or 3000))

    def runtime_failure(self, app_logs: str) -> str | None:
        return None  # 1.x reports a sandbox that failed to start in its start task (runtime_state)

    def callback_urls(self, runtime_env: dict[str, str]) -> list[tuple[str, str]]:
        """The webhooks the sandbox posts the conversation's events to (OH_WEBHOOKS_n_BASE_URL,
        read in order by the agent-server; the app sets _0, OH_AGENT_SERVER_ENV may add more)."""
        hooks = sorted((int(m.group(1)), v) for k, v in runtime_env.items() if (m := _WEBHOOK_ENV.fullmatch(k)))
        return [(f"webhook {n}", url) for n, url in hooks]

    def callback_log(self, runtime_logs: str) -> list[str]:
        lines = [ln.strip()[:300] for ln in _CALLBACK_LOG.findall(runtime_logs)]
        if len(lines) > 3:
            lines = [*lines[:2], f"... {len(lines) - 3} more ...", lines[-1]]
        return lines

    def event_counts(self, conversation_id: str) -> tuple[int | None, int | None]:
        """(events in the sandbox, events the app received by webhook) for the conversation."""
        def count(call: Any) -> int | None:
            try:
                value = call()
                return int(value) if isinstance(value, int | str) else None
            except (AdapterError, ValueError):
                return None

        sandbox = count(lambda: self._agent_call(conversation_id, "GET", "/events/count"))
        app = count(lambda: self._call("GET", f"/api/v1/conversation/{conversation_id}/events/count"))
        return sandbox, app

    def close(self) -> None:
        for c, _ in self._agents.values():
            c.close()
        self._app.close()


def _text(content: Any) -> str:
    """The text of a list of content parts (TextContent and the like)."""
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def _is_user_message(e: dict[str, Any], text: str | None) -> bool:
    if e.get("kind") != "MessageEvent" or e.get("source") != "user":
        return False
    content = (e.get("llm_message") or {}).get("content") or []
    said = "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return text is None or text in said
