"""V1 API (1.x app server, `/api/v1`), agent-server sandbox.

Facts (openhands-ai 1.11.0, `openhands/app_server/`): settings at `/api/v1/settings` as a
diff; `POST /api/v1/app-conversations` returns a start task at once (status WORKING) and
the rest runs in the background; the task ends READY or ERROR (text in `detail`). A
`conversation_id` in the body also names the sandbox container
`oh-agent-server-<uuid hex>`, which is how the harness finds it. The app reaches the
sandbox at `SANDBOX_CONTAINER_URL_PATTERN` (default `http://localhost:{port}`), rewritten to
`host.docker.internal` when it runs in Docker; the sandbox calls the app back (MCP,
webhooks) at `http://host.docker.internal:{SANDBOX_HOST_PORT:-3000}` unless `OH_WEB_URL`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlparse

from harness.errors import ApiError
from harness.openhands import LlmSettings, RuntimeState
from harness.openhands.http import AppClient

SANDBOX_PORT = 8000


class V1Adapter:
    api = "v1"
    health_path = "/health"

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self._app = AppClient(base_url, timeout)
        self._call = self._app.call
        self._tasks: dict[str, str] = {}  # conversation id -> start task id

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
                            error=error, raw=raw)

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

    def runtime_container_name(self, conversation_id: str) -> str:
        return f"oh-agent-server-{conversation_id}"

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

    def close(self) -> None:
        self._app.close()
