"""The adapters: each generation's pure rules (where its app looks for its runtime, where
its sandbox calls back), and its client's one boundary, where an answer of another shape
than the release's API gives becomes an UnexpectedAnswer, never a KeyError or ValueError."""
from typing import Any

import pytest

from harness import generations
from harness.errors import AdapterError, UnexpectedAnswer
from harness.openhands import Client, CountsEvents, NamesRuntime, Replays, Rules, client_for, rules_for
from harness.openhands.v0 import V0Client, V0Rules
from harness.openhands.v1 import V1Client, V1Rules

RUNTIME = {"Config": {"Env": ["port=37395", "PATH=/usr/bin"]}}
IMAGE_ENV = {"SANDBOX_LOCAL_RUNTIME_URL": "http://host.docker.internal"}  # as the app image sets it


def test_v0_runtime_url_before_its_log_line_follows_the_apps_whole_environment() -> None:
    v0 = V0Rules()
    # the probe may look before DockerRuntime logs the URL: the formula must give the same one
    assert v0.runtime_url("", IMAGE_ENV, RUNTIME) == "http://host.docker.internal:37395"
    assert v0.runtime_url("", {**IMAGE_ENV, "DOCKER_HOST_ADDR": "172.17.0.1"}, RUNTIME) == "http://172.17.0.1:37395"
    assert v0.runtime_url("", {}, RUNTIME) == "http://localhost:37395"  # OpenHands' own default
    logged = "Waiting for client to become ready at http://10.0.0.5:37395...\n"
    assert v0.runtime_url(logged, IMAGE_ENV, RUNTIME) == "http://10.0.0.5:37395"
    assert v0.runtime_url("", IMAGE_ENV, None) is None


def test_v1_callback_target_follows_the_apps_settings() -> None:
    callbacks = V1Rules().callbacks
    assert callbacks is not None
    assert callbacks.target({}) == ("host.docker.internal", 3000)
    assert callbacks.target({"SANDBOX_HOST_PORT": "4000"}) == ("host.docker.internal", 4000)
    web = {"OH_WEB_URL": "http://172.17.0.1:4000", "SANDBOX_HOST_PORT": "4000"}
    assert callbacks.target(web) == ("172.17.0.1", 4000)
    assert callbacks.urls({"OH_WEBHOOKS_1_BASE_URL": "http://b", "OH_WEBHOOKS_0_BASE_URL": "http://a"}) == [
        ("webhook 0", "http://a"), ("webhook 1", "http://b")]


def test_v1_before_1_2_takes_no_sandbox_settings_and_names_its_sandbox_at_random() -> None:
    """1.0.0/1.1.0 (openhands/app_server/config.py, sandbox/docker_sandbox_service.py): the
    callback port and the URL pattern are fixed, and the sandbox's name is the start task's word."""
    old, new = rules_for(generations.V1.at("1.0.0")), rules_for(generations.V1.at("1.2.0"))
    assert old.runtime_container_name("abc") is None and new.runtime_container_name("abc") == "oh-agent-server-abc"
    assert old.callbacks is not None and new.callbacks is not None
    assert old.callbacks.target({"SANDBOX_HOST_PORT": "4000"}) == ("host.docker.internal", 3000)
    assert new.callbacks.target({"SANDBOX_HOST_PORT": "4000"}) == ("host.docker.internal", 4000)
    sandbox = {"NetworkSettings": {"Ports": {"8000/tcp": [{"HostPort": "35001"}]}}}
    pattern = {"SANDBOX_CONTAINER_URL_PATTERN": "http://a:{port}"}
    assert old.runtime_url("", pattern, sandbox) == "http://host.docker.internal:35001"
    assert new.runtime_url("", pattern, sandbox) == "http://a:35001"
    client = client_for(generations.V1.at("1.0.0"), "http://127.0.0.1:9")
    assert isinstance(client, NamesRuntime)
    cid = "c1"
    client._tasks[cid] = "t1"  # type: ignore[attr-defined]
    answering(client, [{"status": "WORKING", "sandbox_id": None}],
              [{"status": "WAITING_FOR_SANDBOX", "sandbox_id": "oh-agent-server-3kX"}])
    client.runtime_state(cid)
    assert client.runtime_name(cid) is None
    client.runtime_state(cid)
    assert client.runtime_name(cid) == "oh-agent-server-3kX"
    client.close()


@pytest.mark.parametrize(("version", "path", "params"), [
    ("1.1.0", "/api/v1/events/search", {"conversation_id__eq": "abc"}),
    ("1.2.0", "/api/v1/conversation/abc/events/search", {}),
])
def test_v1_reads_the_apps_events_where_its_release_keeps_them(version: str, path: str, params: dict[str, str]) -> None:
    calls: list[tuple[str, Any]] = []
    client = client_for(generations.V1.at(version), "http://127.0.0.1:9")
    client._call = lambda method, p, **kw: calls.append((p, kw["params"])) or {"items": []}  # type: ignore[attr-defined]
    assert client.events("abc") == []
    assert calls == [(path, {**params, "limit": 100})]
    client.close()


@pytest.mark.parametrize("gen", list(generations.GENERATIONS.values()), ids=lambda g: g.name)
def test_a_generation_has_only_the_parts_it_really_has(gen: generations.Generation) -> None:
    """No stubs of the other generation's methods: a part a generation lacks is absent."""
    rules: Rules = rules_for(gen)
    client: Client = client_for(gen, "http://127.0.0.1:9")
    try:
        assert (rules.callbacks is not None) == gen.callback
        assert isinstance(client, Replays) == (gen.replay_skip is None)
        assert isinstance(client, CountsEvents) == gen.callback  # the webhook's delivery, side by side
    finally:
        client.close()


def answering(client: Any, *answers: Any) -> Any:
    """The client with its app answering `answers` in turn (2xx, so only the shape is wrong)."""
    queue = list(answers)
    client._call = lambda method, path, **kw: queue.pop(0)
    return client


@pytest.mark.parametrize("answers, call", [
    ((["not", "a dict"],), lambda c: c.create_conversation("hi")),
    (({"conversation_id": ""},), lambda c: c.create_conversation("hi")),
    (({"events": [{"no": "id"}], "has_more": True},), lambda c: c.events("abc")),
    (("plain text",), lambda c: c.runtime_state("abc")),
], ids=["v0-create-list", "v0-create-empty-id", "v0-events-without-ids", "v0-state-text"])
def test_v0_answers_of_the_wrong_shape_are_unexpected_answers(answers: tuple[Any, ...], call: Any) -> None:
    client = answering(V0Client("http://127.0.0.1:9"), *answers)
    with pytest.raises(UnexpectedAnswer):
        call(client)
    client.close()


def test_v1_answers_of_the_wrong_shape_are_unexpected_answers() -> None:
    client = answering(V1Client("http://127.0.0.1:9"), {"id": "task-1"}, [], [{"status": "READY"}, {"x": 1}])
    cid = client.create_conversation("hi")
    with pytest.raises(UnexpectedAnswer, match="not a list of one"):
        client.runtime_state(cid)  # an empty list for the start task
    with pytest.raises(UnexpectedAnswer, match="not a list of one"):
        client.runtime_state(cid)  # two
    with pytest.raises(UnexpectedAnswer, match="no start task known"):
        client.runtime_state("never-created")
    with pytest.raises(AdapterError):
        answering(client, [{"conversation_url": None}]).send_message(cid, "hi")
    client.close()


@pytest.mark.parametrize(("version", "socket"), [
    ("0.50.0", True), ("0.57.2", True), ("0.58.0", True), ("0.59.0", False), ("0.62.0", False), (None, False),
    ("main", False)])
def test_a_message_goes_the_way_its_release_takes_it(version: str | None, socket: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """0.x's REST message call came with 0.59.0 (routes/conversation.py add_message, read from the
    wheels); before, the frontend's socket.io event oh_user_action is the only way in: never a
    404 from a later release's call."""
    from harness.openhands import v0

    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(v0, "socket_call", lambda url, query, event, data, timeout: sent.append((event, (query, data))))
    client = client_for(generations.V0.at(version), "http://127.0.0.1:9")
    client._call = lambda method, path, **kw: sent.append((f"{method} {path}", kw["json"]))  # type: ignore[attr-defined]
    client.send_message("c1", "hi")
    if socket:
        assert sent == [("oh_user_action", ({"conversation_id": "c1", "latest_event_id": str(2**31)},
                                            {"action": "message", "args": {"content": "hi", "image_urls": [],
                                                                           "file_urls": []}}))]
    else:
        assert sent == [("POST /api/conversations/c1/message", {"message": "hi"})]
    client.close()


@pytest.mark.parametrize(("app", "agent"), [("http://10.213.0.2:61000", "http://10.213.0.2:35001"),
                                            ("http://127.0.0.1:61000", "http://127.0.0.1:35001")])
def test_v1_reaches_the_sandbox_where_the_apps_ports_are_published(app: str, agent: str) -> None:
    """The app says `http://localhost:PORT` for the sandbox: localhost of the machine its ports
    are published on (a remote daemon's host), as for a browser that reached the app there."""
    c = V1Client(app)
    c._conversation = lambda _id: {"conversation_url": "http://localhost:35001/api/conversations/abc",  # type: ignore[method-assign]
                                   "session_api_key": "k"}
    client, prefix = c._agent("abc")
    assert str(client._http.base_url).rstrip("/") == agent and prefix == "/api/conversations/abc"
    c.close()


@pytest.mark.parametrize(("version", "route", "body"), [
    ("1.11.0", "/api/v1/settings", {"agent_settings_diff": {"llm": {"model": "m", "api_key": "k", "base_url": "u"}}}),
    ("1.7.0", "/api/v1/settings", {"agent_settings_diff": {"llm": {"model": "m", "api_key": "k", "base_url": "u"}}}),
    ("1.6.0", "/api/settings", {"llm_model": "m", "llm_api_key": "k", "llm_base_url": "u"}),
])
def test_v1_stores_the_llm_settings_the_way_its_release_takes_them(version: str, route: str,
                                                                   body: dict[str, Any]) -> None:
    from harness.openhands import LlmSettings

    calls: list[tuple[str, str, Any]] = []
    client = client_for(generations.V1.at(version), "http://127.0.0.1:9")
    client._call = lambda method, path, **kw: calls.append((method, path, kw.get("json")))  # type: ignore[attr-defined]
    client.store_settings(LlmSettings(model="m", api_key="k", base_url="u"))
    assert calls == [("POST", route, body)]
    client.close()
