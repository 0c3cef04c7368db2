"""The Agent Canvas adapter without a container: what its client sends through the ingress
(the key's header, a conversation that carries its own LLM), how it reads a conversation
back, and its rules (the runtime is the app; the entrypoint's failure lines)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from harness import generations, modes
from harness.errors import ApiError, UnexpectedAnswer
from harness.openhands import LlmSettings, canvas, client_for, rules_for
from harness.openhands.canvas import KEY_HEADER, TOOLS, CanvasClient, CanvasRules

CID = "2ef044e4-20e4-4e35-b8a5-9c614e9c328b"
LLM = LlmSettings(model="openai/gpt-4o", api_key="oh-matrix-scripted", base_url="http://127.0.0.1:18099/v1")


def served(handler: Any, key: str | None = "k") -> tuple[CanvasClient, list[httpx.Request]]:
    """A client whose ingress is `handler(request) -> (status, json)`; the requests it saw."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = handler(request)
        return httpx.Response(status, json=body)

    client = CanvasClient("http://127.0.0.1:9", api_key=key)
    headers = {KEY_HEADER: key} if key else None
    client._app._http = httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(answer),
                                     headers=headers)
    return client, seen


def test_latest_and_canvas_tags_pick_it_and_a_bare_number_stays_the_app_servers() -> None:
    gen = generations.get("canvas")
    assert gen.majors == () and gen.latest and not generations.get("v1").latest
    assert generations.for_tag("latest").name == "canvas" and generations.for_tag("latest-2").name == "canvas"
    assert generations.for_tag("canvas-1.16").name == "canvas"
    assert generations.for_tag("1.16.0").name == "v1"  # an app-server 1.x tag stays V1's
    assert generations.app_server_newest().name == "v1"
    assert generations.for_image("ghcr.io/openhands/agent-canvas:1.20.0") is gen
    assert generations.for_image("docker.openhands.dev/openhands/openhands:latest") is None
    assert gen.api_key_env == "LOCAL_BACKEND_API_KEY" and gen.llm_caller == "app"
    assert gen.runtime_is_app and not gen.starts_containers and gen.documented_mode == "bridge"


def test_a_conversation_carries_its_llm_and_the_key() -> None:
    client, seen = served(lambda r: (201, {"id": CID, "execution_status": "idle"}))
    with pytest.raises(UnexpectedAnswer, match="no LLM settings"):
        client.create_conversation("hi")
    client.store_settings(LLM)
    assert client.create_conversation("create a file [oh-matrix task t 1]") == CID
    request = seen[-1]
    assert (request.method, request.url.path) == ("POST", "/api/conversations")
    assert request.headers[KEY_HEADER] == "k"
    body = json.loads(request.content)
    assert body["agent"]["llm"] == {"model": LLM.model, "base_url": LLM.base_url, "api_key": LLM.api_key,
                                    "usage_id": "agent"}
    assert [t["name"] for t in body["agent"]["tools"]] == list(TOOLS)
    assert body["workspace"] == {"kind": "LocalWorkspace", "working_dir": "/projects"}
    assert body["initial_message"]["run"] is True
    assert body["initial_message"]["content"] == [{"type": "text", "text": "create a file [oh-matrix task t 1]"}]
    client.close()


def test_a_wrong_key_is_the_apis_error() -> None:
    client, _ = served(lambda r: (401, {"detail": "Unauthorized"}), key="wrong")
    client.store_settings(LLM)
    with pytest.raises(ApiError, match="HTTP 401"):
        client.create_conversation("hi")
    client.close()


def test_answers_of_the_wrong_shape_are_unexpected() -> None:
    client, _ = served(lambda r: (201, ["not", "an object"]))
    client.store_settings(LLM)
    with pytest.raises(UnexpectedAnswer, match="no conversation id"):
        client.create_conversation("hi")
    with pytest.raises(UnexpectedAnswer, match="not an object"):
        client.runtime_state(CID)
    client.close()


@pytest.mark.parametrize(("status", "ready", "error"), [
    ("idle", True, None), ("running", True, None), ("finished", True, None),
    ("error", False, "conversation error"), ("stuck", False, "conversation stuck")])
def test_the_runtime_is_ready_once_the_agent_server_holds_the_conversation(
        status: str, ready: bool, error: str | None) -> None:
    client, _ = served(lambda r: (200, {"id": CID, "execution_status": status}))
    state = client.runtime_state(CID)
    assert (state.ready, state.error, state.status) == (ready, error, f"execution {status}")
    client.close()


EVENTS = [
    {"kind": "SystemPromptEvent", "source": "agent"},
    {"kind": "MessageEvent", "source": "user",
     "llm_message": {"role": "user", "content": [{"type": "text", "text": "create it [oh-matrix task t 1]"}]}},
    {"kind": "ActionEvent", "source": "agent", "tool_name": "file_editor",
     "action": {"command": "create", "path": "/projects/t/hello.txt"}},
    {"kind": "ObservationEvent", "source": "environment",
     "observation": {"content": [{"type": "text", "text": "File created"}], "is_error": False}},
    {"kind": "ActionEvent", "source": "agent", "tool_name": "finish", "action": {"message": "created"}},
]


def test_a_turn_is_read_from_the_agent_servers_events_across_pages() -> None:
    def handler(r: httpx.Request) -> tuple[int, Any]:
        if r.url.path.endswith("/events/search"):
            if r.url.params.get("page_id") == "2":
                return 200, {"items": EVENTS[3:], "next_page_id": None}
            assert r.url.params["limit"] == "100"
            return 200, {"items": EVENTS[:3], "next_page_id": "2"}
        return 200, {"id": CID, "execution_status": "finished"}

    client, seen = served(handler)
    turn = client.turn(CID, "[oh-matrix task t 1]")
    assert turn.done and turn.state == "finished"
    assert turn.actions == ["file_editor: create /projects/t/hello.txt", "finish: created"]
    assert turn.outputs == ["File created"] and turn.said == [("finish", "created")]
    assert [r.url.path for r in seen] == [f"/api/conversations/{CID}", f"/api/conversations/{CID}/events/search",
                                          f"/api/conversations/{CID}/events/search"]
    client.send_message(CID, "again")
    assert (seen[-1].method, seen[-1].url.path) == ("POST", f"/api/conversations/{CID}/events")
    assert json.loads(seen[-1].content) == {"role": "user", "content": [{"type": "text", "text": "again"}],
                                            "run": True}
    client.close()


def test_the_rules_say_the_runtime_is_the_app() -> None:
    rules = rules_for(generations.get("canvas"))
    assert isinstance(rules, CanvasRules) and rules.callbacks is None
    assert rules.runtime_container_name(CID) is None
    assert rules.runtime_url("", {}, None) == "http://127.0.0.1:18000"
    assert rules.runtime_url("", {"AGENT_SERVER_PORT": "19000"}, None) == "http://127.0.0.1:19000"


@pytest.mark.parametrize(("logs", "line"), [
    ("[agent-canvas] agent-server on port 18000\n"
     "[agent-canvas] WARNING: Agent Server on port 18000 did not become ready within 60s\n"
     "[agent-canvas] ingress on port 8000\n",
     "[agent-canvas] WARNING: Agent Server on port 18000 did not become ready within 60s"),
    ("[agent-canvas] ERROR: Static server (PID 107) exited\n", "[agent-canvas] ERROR: Static server (PID 107) exited"),
    ("[agent-canvas] Agent Server is ready on port 18000\n", None),
])
def test_the_entrypoints_failure_lines(logs: str, line: str | None) -> None:
    rules = rules_for(generations.get("canvas"))
    assert rules.failure_log is not None
    assert rules.failure_log.line(logs) == line


def test_the_client_is_made_from_the_registry() -> None:
    client = client_for(generations.get("canvas"), "http://127.0.0.1:9")
    assert isinstance(client, CanvasClient)
    client.close()


def test_its_cells_run_the_documented_line_with_no_socket_and_its_own_port_on_the_host_network() -> None:
    gen = generations.get("canvas")
    bridge = modes.get("bridge").launch(gen, image="ghcr.io/openhands/agent-canvas:1.20.0", env={}, host_port=None)
    assert bridge.docker_run() == "docker run -it --rm -p 8000:8000 --name openhands-app " \
                                  "ghcr.io/openhands/agent-canvas:1.20.0"
    assert bridge.daemon() is None and bridge.listen_port == 8000
    assert [p.option() for p in bridge.publishes(placed=True)] == ["127.0.0.1::8000"]
    host = modes.get("host").launch(gen, image="i", env={}, host_port=41234)
    assert host.docker_run() == "docker run -it --rm --network host --name openhands-app i"  # as a person runs it
    assert host.container_env() == {"PORT": "41234"} and host.argv() == []  # placed: the entrypoint's own setting
    assert modes.fixed_host_ports(modes.get("host"), gen) == (18000, 18001)  # one such cell at a time


def test_the_session_key_is_the_settings_else_the_file_the_entrypoint_kept() -> None:
    rules = canvas.CanvasRules()
    files = {"/home/openhands/.openhands/agent-canvas/api-key.txt": "k-from-file\n"}
    assert rules.session_key({"HOME": "/home/openhands"}, files.get) == "k-from-file"
    assert rules.session_key({"LOCAL_BACKEND_API_KEY": "a", "OH_SESSION_API_KEYS_0": "b"}, files.get) == "b"
    assert rules.session_key({"HOME": "/root"}, files.get) is None


def test_the_recommendation_ranks_canvas_documented_bridge_first() -> None:
    gen = generations.get("canvas")
    assert modes.rank("bridge", gen) == 0 and modes.rank("host-gateway", gen) == 1
    assert modes.rank("host-gateway", generations.get("v0")) == 0  # the app server documents --add-host
    assert modes.why("bridge", gen) == modes.DOCUMENTED


def test_an_upgrade_from_the_app_server_to_canvas_says_it_crosses_products() -> None:
    from harness.model import CellResult
    from harness.results import upgrade

    def cell(tag: str, api: str, line: str) -> CellResult:
        return CellResult.model_validate({"id": f"{tag}-bridge", "tag": tag, "mode": "bridge", "api": api,
                                          "docker_run": line, "connect": {"verdict": "pass"}})

    old = cell("0.62", "v0", "docker run -it --rm -e SANDBOX_RUNTIME_CONTAINER_IMAGE=r -v /var/run/docker.sock:"
                             "/var/run/docker.sock -p 3000:3000 --name openhands-app app:0.62")
    new = cell("latest", "canvas", "docker run -it --rm -p 8000:8000 --name openhands-app canvas:1.20.0")
    u = upgrade.compare([old, new], "0.62", "latest")
    assert u.crosses is not None and "0.62 and latest are different products" in u.crosses
    assert "needs no Docker socket, no runtime image (SANDBOX_RUNTIME_CONTAINER_IMAGE) and no host.docker.internal" \
        in u.crosses and "port 8000 behind a session key (LOCAL_BACKEND_API_KEY)" in u.crosses
    assert "-v /var/run/docker.sock:/var/run/docker.sock" in u.settings_removed and "-p 8000:8000" in u.settings_added
    assert upgrade.compare([old], "0.62", "0.62").crosses is None
