"""V1 API (1.x app server, `/api/v1`), agent-server sandbox.

Facts (openhands-ai 1.11.0, `openhands/app_server/`): settings at `/api/v1/settings` as a
diff; `POST /api/v1/app-conversations` returns a start task at once (status WORKING) and
the rest runs in the background; the task ends READY or ERROR (text in `detail`). A
`conversation_id` in the body also names the sandbox container
`oh-agent-server-<uuid hex>`, which is how the harness finds it. The app reaches the
sandbox at `SANDBOX_CONTAINER_URL_PATTERN` (default `http://localhost:{port}`), rewritten to
`host.docker.internal` when it runs in Docker; the sandbox calls the app back (MCP,
webhooks) at `http://host.docker.internal:{SANDBOX_HOST_PORT:-3000}` unless `OH_WEB_URL`.

After the start, the frontend talks to the agent-server in the sandbox at the
conversation's `conversation_url` (a host port, so `localhost` from the host) with the
`session_api_key`, and so do `send_message` and `turn` here (the app's own event copy
arrives by webhook in batches of up to 30 s). From 1.7.0 the app also forwards one
(`POST /api/v1/app-conversations/ID/send-message`), which the harness does not use: the
sandbox's own route is in every 1.x release.

Older 1.x releases differ in facts this adapter keys by version (generations.V1.before: the
app they serve, how the LLM settings are stored, how the sandbox joins the host network, its
startup grace), each with the release code it was read from; before 1.2.0 (V1.oldest) they
are refused, not driven with these calls.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from harness.errors import AdapterError, UnexpectedAnswer
from harness.generations import V1, Generation
from harness.openhands import Callbacks, Failure, FailureLog, LlmSettings, RuntimeState, Turn, port_taken
from harness.openhands.http import AppClient

if TYPE_CHECKING:
    import httpx

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


class V1Callbacks:
    def __init__(self, gen: Generation = V1) -> None:
        self.gen = gen  # V1 as the cell's release has it: its callback port's setting

    def target(self, app_env: dict[str, str]) -> tuple[str, int]:
        """Where the sandbox calls the app back (MCP at web_url, webhooks)."""
        web = app_env.get("OH_WEB_URL")
        if web:
            u = urlparse(web)
            return (u.hostname or "", u.port or (443 if u.scheme == "https" else 80))
        port = app_env.get(self.gen.callback_port_env or "") or self.gen.callback_port_default
        return ("host.docker.internal", int(port))

    @property
    def health_path(self) -> str:
        return self.gen.health_path

    def urls(self, runtime_env: dict[str, str]) -> list[tuple[str, str]]:
        """The webhooks the sandbox posts the conversation's events to (OH_WEBHOOKS_n_BASE_URL,
        read in order by the agent-server; the app sets _0, OH_AGENT_SERVER_ENV may add more)."""
        hooks = sorted((int(m.group(1)), v) for k, v in runtime_env.items() if (m := _WEBHOOK_ENV.fullmatch(k)))
        return [(f"webhook {n}", url) for n, url in hooks]

    def log(self, runtime_logs: str) -> list[str]:
        lines = [ln.strip()[:300] for ln in _CALLBACK_LOG.findall(runtime_logs)]
        if len(lines) > 3:
            lines = [*lines[:2], f"... {len(lines) - 3} more ...", lines[-1]]
        return lines


class V1Rules:
    """Where a 1.x app reaches its sandbox, and where the sandbox calls it back. A sandbox
    that failed to start is said in the start task (V1Client.runtime_state), not a log line."""

    failure_log: FailureLog | None = None

    def __init__(self, gen: Generation = V1) -> None:
        self.gen = gen
        self.callbacks: Callbacks | None = V1Callbacks(gen)

    def runtime_container_name(self, conversation_id: str) -> str | None:
        """The sandbox's name, from 1.2.0 the conversation's; before, random (the start task names it)."""
        return None if self.gen.runtime_named_at_random else f"{V1.runtime_prefix}{conversation_id}"

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
        pattern = app_env.get(self.gen.url_pattern_env or "") or "http://localhost:{port}"
        url = pattern.format(port=port)
        u = urlparse(url)
        if u.hostname == "localhost":  # replace_localhost_hostname_for_docker
            url = url.replace("//localhost", "//host.docker.internal", 1)
        return url


def _one(answer: Any, method: str, path: str) -> dict[str, Any]:
    """The single item of a batch-get answer (`?ids=ONE` gives a list of one, null when unknown)."""
    if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict | None):
        raise UnexpectedAnswer(method, path, "not a list of one", answer)
    return answer[0] or {}


class V1Client:
    def __init__(self, base_url: str, timeout: float = 30.0, gen: Generation = V1,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._gen = gen  # V1 as the cell's release has it (Generation.at)
        self._app = AppClient(base_url, timeout, transport=transport)
        self._transport = transport  # the sandbox's own API is called from the same place
        self._call = self._app.call
        self._host = urlparse(base_url).hostname or "localhost"  # where the app's ports are published
        self._tasks: dict[str, str] = {}  # conversation id -> start task id
        self._sandboxes: dict[str, str] = {}  # conversation id -> its sandbox's name, as its start task says
        self._agents: dict[str, tuple[AppClient, str]] = {}  # conversation id -> its agent-server, path

    def healthy(self) -> bool:
        return self._app.answers(self._gen.health_path)

    def store_settings(self, llm: LlmSettings) -> None:
        if self._gen.settings_call == "flat":  # before 1.7.0 (generations.V1.before)
            self._call("POST", "/api/settings", json={
                "llm_model": llm.model, "llm_api_key": llm.api_key, "llm_base_url": llm.base_url})
            return
        self._call("POST", "/api/v1/settings", json={"agent_settings_diff": {"llm": {
            "model": llm.model, "api_key": llm.api_key, "base_url": llm.base_url}}})

    def create_conversation(self, message: str) -> str:
        cid = uuid.uuid4().hex
        path = "/api/v1/app-conversations"
        task = self._call("POST", path, json={
            "conversation_id": str(uuid.UUID(cid)),
            "initial_message": {"role": "user", "content": [{"type": "text", "text": message}]},
        })
        if not isinstance(task, dict) or not task.get("id"):
            raise UnexpectedAnswer("POST", path, "no start task id", task)
        self._tasks[cid] = str(task["id"])
        return cid

    def _conversation(self, conversation_id: str) -> dict[str, Any]:
        path = "/api/v1/app-conversations"
        return _one(self._call("GET", path, params={"ids": conversation_id}), "GET", path)

    def runtime_state(self, conversation_id: str) -> RuntimeState:
        path = "/api/v1/app-conversations/start-tasks"
        if conversation_id not in self._tasks:
            raise UnexpectedAnswer("GET", path, f"no start task known for conversation {conversation_id}", "")
        task = _one(self._call("GET", path, params={"ids": self._tasks[conversation_id]}), "GET", path)
        status = str(task.get("status"))
        if task.get("sandbox_id"):  # the sandbox's container name, once it was started
            self._sandboxes[conversation_id] = str(task["sandbox_id"])
        raw: dict[str, Any] = {"start_task": task}
        sandbox = ""
        if status in ("READY", "ERROR") and (conv := self._conversation(conversation_id)):
            raw["conversation"] = conv
            sandbox = f" sandbox={conv.get('sandbox_status')} execution={conv.get('execution_status')}"
        error = f"start task ERROR: {task.get('detail')}" if status == "ERROR" else None
        return RuntimeState(ready=status == "READY", status=f"start task {status}{sandbox}",
                            error=error, failure=failure(error) if error else None, raw=raw)

    def runtime_name(self, conversation_id: str) -> str | None:
        """The sandbox's name as the app said it (its start task, read by runtime_state): a
        release that names it at random (before 1.2.0) is known to the harness no sooner."""
        return self._sandboxes.get(conversation_id)

    def _app_events(self, conversation_id: str, call: str) -> tuple[str, dict[str, str]]:
        """The app's own copy of a conversation's events: `call` (search, count) by path from
        1.2.0, by query before (generations.V1.before)."""
        if self._gen.app_events == "query":
            return f"/api/v1/events/{call}", {"conversation_id__eq": conversation_id}
        return f"/api/v1/conversation/{conversation_id}/events/{call}", {}

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        return paged(self._call, *self._app_events(conversation_id, "search"))

    def _agent(self, conversation_id: str) -> tuple[AppClient, str]:
        if conversation_id not in self._agents:
            conv = self._conversation(conversation_id)
            url, key = conv.get("conversation_url"), conv.get("session_api_key")
            if not url or not key:
                raise UnexpectedAnswer("GET", "/api/v1/app-conversations", "no conversation_url/session_api_key yet",
                                       {k: v for k, v in conv.items() if k != "session_api_key"})
            u = urlparse(str(url))
            # `localhost` is the machine the app's ports are published on, as for the browser
            # that reached the app there: a remote daemon's host, not the harness's own
            netloc = f"{self._host}:{u.port}" if u.hostname == "localhost" and u.port else u.netloc
            client = AppClient(f"{u.scheme}://{netloc}", 30, {"X-Session-API-Key": key}, self._transport)
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
        if not isinstance(info, dict):
            raise UnexpectedAnswer("GET", "the conversation on its agent-server", "not an object", info)
        events = paged(lambda method, path, **kw: self._agent_call(conversation_id, method, path, **kw),
                             "/events/search")
        return turn_from_events(events, after, str(info.get("execution_status")))

    def event_counts(self, conversation_id: str) -> tuple[int | None, int | None]:
        """(events in the sandbox, events the app received by webhook) for the conversation."""
        def count(call: Any) -> int | None:
            try:
                value = call()
                return int(value) if isinstance(value, int | str) else None
            except (AdapterError, ValueError):
                return None

        sandbox = count(lambda: self._agent_call(conversation_id, "GET", "/events/count"))
        path, params = self._app_events(conversation_id, "count")
        app = count(lambda: self._call("GET", path, params=params))
        return sandbox, app

    def close(self) -> None:
        for c, _ in self._agents.values():
            c.close()
        self._app.close()


def paged(call: Any, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every item of the agent-server's paged search (`items`, `next_page_id`), 100 a page:
    the app's and its sandbox's in 1.x, Agent Canvas's through its ingress."""
    out: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        data = call("GET", path, params={**(params or {}), "limit": 100, **({"page_id": page} if page else {})})
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise UnexpectedAnswer("GET", path, "no list of items", data)
        out += [e for e in items if isinstance(e, dict)]
        page = data.get("next_page_id")
        if not page:
            return out


def turn_from_events(events: list[dict[str, Any]], after: str | None, execution_status: str) -> Turn:
    """A turn from the agent-server's events and its execution status."""
    t = Turn(done=False, state=execution_status)
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


def _text(content: Any) -> str:
    """The text of a list of content parts (TextContent and the like)."""
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def _is_user_message(e: dict[str, Any], text: str | None) -> bool:
    if e.get("kind") != "MessageEvent" or e.get("source") != "user":
        return False
    content = (e.get("llm_message") or {}).get("content") or []
    said = "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return text is None or text in said
