"""The harness's own path to the app, told apart from OpenHands (#25, item 4): an app that
answers on its own port inside its namespace while the harness's connects fail is an
`error` naming the harness's path, after two misses a look apart; an app that is still
booting, or whose API answers the harness, never is."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.cells import launch
from harness.cells.launch import HarnessPath
from harness.host.netprobe import NetProbe
from harness.model import Cause, Verdict


def seen(where: str, tcp: str, http: str | None = None) -> NetProbe:
    return NetProbe(where=where, host="127.0.0.1", port=3000, dns="ok", addresses=["127.0.0.1"], tcp=tcp,
                    tcp_ms=1, http=http)


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[NetProbe]]:
    """What the probes will see, look by look: inside the app's namespace and from here."""
    script: dict[str, list[NetProbe]] = {"inside": [], "here": []}
    monkeypatch.setattr(launch, "probe_from", lambda *a, **k: script["inside"].pop(0))
    monkeypatch.setattr(launch, "probe_here", lambda *a, **k: script["here"].pop(0))
    return script


def path(logs: str = "") -> HarnessPath:
    app: Any = SimpleNamespace(reload=lambda: None, logs=lambda **k: logs.encode(),
                               attrs={"NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.9"}}}})
    return HarnessPath(app, 3000, "/health", "http://127.0.0.1:41234")


def test_the_app_answering_inside_while_the_harness_is_refused_is_an_error_on_the_second_miss(
        looks: dict[str, list[NetProbe]]) -> None:
    ok = "HTTP/1.1 200 OK"
    looks["inside"] += [seen("inside", "refused"), seen("inside", "open", ok), seen("inside", "open", ok),
                        seen("its own address", "open", ok)]  # it binds every address: the harness's path
    looks["here"] += [seen("here", "refused"), seen("here", "refused")]
    p = path()
    assert p.look(1.0, "why") is None  # before the first look: booting
    assert p.look(5.0, "why") is None  # the app does not listen yet: booting
    assert p.look(6.0, "why") is None  # not a look apart
    assert p.look(8.0, "why") is None  # the first miss
    d = p.look(11.0, "RootlessKit's namespace")
    assert d is not None and (d.verdict, d.cause) == (Verdict.ERROR, Cause.HARNESS_ERROR)
    assert d.why.startswith("the harness cannot reach the app's API at 127.0.0.1:41234 (refused) while the app "
                            "answers on its own port 3000 inside its namespace: RootlessKit's namespace"), d.why
    assert "from here: 127.0.0.1:3000 -> 127.0.0.1 TCP refused" in d.why


def test_a_harness_that_gets_through_between_looks_resets_the_count(looks: dict[str, list[NetProbe]]) -> None:
    ok = "HTTP/1.1 200 OK"
    looks["inside"] += [seen("inside", "open", ok)] * 3
    looks["here"] += [seen("here", "refused"), seen("here", "open", ok), seen("here", "refused")]
    p = path()
    assert [p.look(t, "") for t in (5.0, 8.0, 11.0)] == [None, None, None]


def test_an_app_that_accepts_but_does_not_answer_http_inside_is_still_booting(
        looks: dict[str, list[NetProbe]]) -> None:
    looks["inside"] += [seen("inside", "open", "closed without a response")] * 3
    p = path()
    assert [p.look(t, "") for t in (5.0, 8.0, 11.0)] == [None, None, None]
    assert looks["here"] == []  # the harness's own probe is not even run


def test_an_app_that_binds_its_loopback_only_is_the_apps_failure_not_the_harnesss(
        looks: dict[str, list[NetProbe]]) -> None:
    ok = "HTTP/1.1 200 OK"
    looks["inside"] += [seen("inside", "open", ok), seen("inside", "open", ok), seen("its own address", "refused")]
    looks["here"] += [seen("here", "refused"), seen("here", "refused")]
    p = path(logs="INFO     Uvicorn running on                    server.py:234\n"
                  "                             http://127.0.0.1:3000 (Press CTRL+C\n")
    assert p.look(5.0, "") is None  # the first miss
    d = p.look(8.0, "")
    assert d is not None and (d.verdict, d.cause) == (Verdict.FAIL, Cause.LOOPBACK_BOUND)
    assert "refuses at its own address 172.17.0.9:3000" in d.why
    assert "Its own words: 'Uvicorn running on http://127.0.0.1:3000'" in d.why
