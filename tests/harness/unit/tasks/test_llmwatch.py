"""A real LLM that cannot be used is a cause within seconds: the agent's own errors name a
bad key or model at once; an endpoint that does not answer from the caller's namespace is
named after two probes while the agent shows no step."""

from __future__ import annotations

from typing import Any

import pytest

from harness.host.netprobe import NetProbe
from harness.openhands import Turn
from harness.tasks import llmwatch


class Caller:
    name = "oh-matrix-app"

    def logs(self, tail: int) -> bytes:
        return b"litellm.APIConnectionError: Connection refused. Attempt #1 | You can customize retry values\n"


def watch(monkeypatch: pytest.MonkeyPatch, tcp: str, base_url: str = "http://127.0.0.1:9/v1") -> llmwatch.LlmWatch:
    seen: list[tuple[str, int]] = []

    def probe(container: Any, where: str, host: str, port: int, path: str = "/") -> NetProbe:
        seen.append((host, port))
        return NetProbe(where=where, host=host, port=port, dns="ok", addresses=[host], tcp=tcp, tcp_ms=1)

    monkeypatch.setattr(llmwatch, "probe_from", probe)
    w = llmwatch.LlmWatch(Caller(), base_url, log_of=Caller())  # type: ignore[arg-type]
    w.seen = seen  # type: ignore[attr-defined]
    return w


def test_an_endpoint_that_refuses_is_named_after_two_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    w = watch(monkeypatch, "refused")
    running = Turn(done=False, state="running")
    assert w.check(running) is None
    cause, evidence = w.check(running) or (None, [])
    assert cause == "llm-unreachable"
    assert "127.0.0.1:9" in evidence[0] and "TCP refused" in evidence[0]
    assert any("Attempt #1" in e for e in evidence)  # OpenHands' own retry line
    assert w.seen == [("127.0.0.1", 9), ("127.0.0.1", 9)]  # type: ignore[attr-defined]


def test_a_step_of_the_agent_means_the_model_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    w = watch(monkeypatch, "refused")
    stepped = Turn(done=False, state="running", actions=["run: ls"])
    assert w.check(Turn(done=False, state="running")) is None
    assert w.check(stepped) is None and w.failed_probes == 0


def test_an_open_endpoint_is_never_unreachable_and_the_default_is_openais(monkeypatch: pytest.MonkeyPatch) -> None:
    w = watch(monkeypatch, "open", base_url="")
    for _ in range(5):
        assert w.check(Turn(done=False, state="running")) is None
    assert w.seen[0] == ("api.openai.com", 443)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("error", "cause"), [
    ("litellm.AuthenticationError: OpenAIException - Incorrect API key provided", "llm-auth"),
    ("litellm.NotFoundError: OpenAIException - The model `gpt-9` does not exist", "llm-model"),
])
def test_the_agents_own_error_names_a_bad_key_or_model_at_once(monkeypatch: pytest.MonkeyPatch, error: str,
                                                               cause: str) -> None:
    w = watch(monkeypatch, "open")
    found = w.check(Turn(done=True, state="error", errors=[error]))
    assert found is not None and found[0] == cause and error[:40] in found[1][0]
