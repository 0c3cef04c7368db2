"""The rules that turn observations into verdicts (the observations themselves come from
the engine tests and the matrix)."""

import pytest

from harness.diagnosis import REFUSALS_TO_DECIDE, TIMEOUTS_TO_DECIDE, Judge, Observation
from harness.netprobe import NetProbe
from harness.openhands import RuntimeState
from harness.openhands.v1 import failure

pytestmark = pytest.mark.unit


def v1_error(detail: str) -> RuntimeState:
    """A start task in ERROR, classified as the V1 adapter classifies it."""
    return RuntimeState(ready=False, status="start task ERROR", error=detail, failure=failure(detail))

STARTING = RuntimeState(ready=False, status="STARTING/STATUS$STARTING_RUNTIME")


def obs(t: float = 1, **kw: object) -> Observation:
    base: dict[str, object] = {"app_status": "running", "runtime_status": "running", "state": STARTING}
    base.update(kw)
    return Observation(t=t, **base)  # type: ignore[arg-type]


def probe(**kw: object) -> NetProbe:
    base: dict[str, object] = {"where": "app", "host": "host.docker.internal", "port": 30001, "dns": "ok",
                               "addresses": ["172.17.0.1"]}
    base.update(kw)
    return NetProbe(**base)  # type: ignore[arg-type]


def test_ready_passes() -> None:
    d = Judge().add(obs(state=RuntimeState(ready=True, status="RUNNING/STATUS$READY")))
    assert d is not None and d.verdict == "pass" and d.cause is None


def test_dns_failure_decides_at_once() -> None:
    d = Judge().add(obs(app_probe=probe(dns="fail", addresses=None)))
    assert d is not None and (d.verdict, d.cause) == ("fail", "dns-unresolved")


def test_refused_while_runtime_boots_is_not_a_verdict() -> None:
    j = Judge()
    for _ in range(5):
        # the runtime does not listen on its own port yet: refusals prove nothing
        assert j.add(obs(app_probe=probe(tcp="refused"), self_probe=probe(where="runtime", tcp="refused"))) is None


def test_refused_while_runtime_listens_decides() -> None:
    j = Judge()
    decisions = [j.add(obs(app_probe=probe(tcp="refused"), self_probe=probe(where="runtime", tcp="open")))
                 for _ in range(REFUSALS_TO_DECIDE)]
    assert decisions[:-1] == [None] * (REFUSALS_TO_DECIDE - 1)
    assert decisions[-1] is not None and decisions[-1].cause == "connection-refused"


def test_timeouts_must_be_consecutive() -> None:
    j = Judge()
    seq = ["timeout", "timeout", "refused"] + ["timeout"] * TIMEOUTS_TO_DECIDE
    results = [j.add(obs(app_probe=probe(tcp=t))) for t in seq]
    assert all(r is None for r in results[:-1])
    assert results[-1] is not None and results[-1].cause == "connect-timeout"


def test_runtime_exit_and_disappearance() -> None:
    d = Judge().add(obs(runtime_status="exited", runtime_exit=3))
    assert d is not None and d.cause == "runtime-exited" and "exit code 3" in d.why
    j = Judge()
    assert j.add(obs(runtime_status="running")) is None
    d = j.add(obs(runtime_status="absent"))
    assert d is not None and d.cause == "runtime-missing"


def test_app_exit() -> None:
    d = Judge().add(obs(app_status="exited", app_exit=1))
    assert d is not None and d.cause == "app-exited"


def test_budget_causes() -> None:
    j = Judge()
    j.add(obs(runtime_status="absent", app_probe=None))
    assert j.at_budget(60).cause == "runtime-missing"
    j = Judge()
    j.add(obs(app_probe=probe(tcp="open"), proxy={"HTTP_PROXY": "http://proxy:3128"}))
    assert j.at_budget(60).cause == "proxy"
    j = Judge()
    j.add(obs(app_probe=probe(tcp="open"), proxy={"HTTP_PROXY": "http://proxy:3128",
                                                  "NO_PROXY": "localhost,host.docker.internal"}))
    assert j.at_budget(60).cause == "budget-exceeded"
    j = Judge()
    j.add(obs(api_error="GET /api/conversations/x -> HTTP 500"))
    assert j.at_budget(60).cause == "api-error"



def test_app_giving_up_on_a_booting_runtime_is_its_budget_not_an_api_error() -> None:
    gave_up = v1_error("start task ERROR: Sandbox entered error state")
    d = Judge().add(obs(state=gave_up, self_probe=probe(where="runtime", tcp="refused")))
    assert d is not None and d.cause == "budget-exceeded" and "still starting" in d.why and d.transient
    d = Judge().add(obs(state=gave_up, self_probe=probe(where="runtime", tcp="open"), app_probe=probe(tcp="open")))
    assert d is not None and d.cause == "budget-exceeded" and "startup grace" in d.why and d.transient
    other = v1_error("start task ERROR: MCP Connection Failure")
    d = Judge().add(obs(state=other, self_probe=probe(where="runtime", tcp="open")))
    assert d is not None and d.cause == "api-error" and not d.transient


def test_callback_direction_is_named() -> None:
    j = Judge()
    cb = probe(where="sandbox", port=3000, tcp="refused")
    first = j.add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"), callback_probe=cb))
    second = j.add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"), callback_probe=cb))
    assert first is None
    assert second is not None and second.cause == "connection-refused"
    assert second.why.startswith("sandbox -> app (callback)")


def test_refused_on_a_loopback_only_port_decides_before_the_runtime_boots() -> None:
    d = Judge().add(obs(app_probe=probe(tcp="refused"), self_probe=probe(where="runtime", tcp="refused"),
                        published_on=["127.0.0.1"]))
    assert d is not None and d.cause == "connection-refused" and "127.0.0.1 only" in d.why
    # published on every address: a refusal may just be a runtime still booting
    assert Judge().add(obs(app_probe=probe(tcp="refused"), self_probe=probe(where="runtime", tcp="refused"),
                           published_on=["0.0.0.0"])) is None


def test_a_proxy_that_keeps_an_open_path_from_working_is_named() -> None:
    from harness.diagnosis import PROXIED_TO_DECIDE

    j = Judge()
    seen = [j.add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"),
                      proxy={"HTTP_PROXY": "http://127.0.0.1:9"})) for _ in range(PROXIED_TO_DECIDE)]
    assert seen[:-1] == [None] * (PROXIED_TO_DECIDE - 1)
    assert seen[-1] is not None and seen[-1].cause == "proxy"
    # exempted by NO_PROXY: no verdict from the proxy rule
    j = Judge()
    for _ in range(PROXIED_TO_DECIDE + 2):
        assert j.add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"),
                         proxy={"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "host.docker.internal"})) is None


def test_a_sandbox_the_daemon_would_not_start_is_missing_not_an_api_error() -> None:
    # The text docker_sandbox_service.start_sandbox puts in the start task when
    # containers.run raises (here: a host port the app picked in its own namespace).
    detail = ("start task ERROR: 500: Failed to start container: 500 Server Error for http+docker://localhost/"
              "v1.41/containers/abc/start: Internal Server Error (\"driver failed programming external "
              "connectivity on endpoint oh-agent-server-abc: Bind for 0.0.0.0:40123 failed: port is already "
              "allocated\")")
    d = Judge().add(obs(runtime_status="created", state=v1_error(detail)))
    assert d is not None and (d.verdict, d.cause) == ("fail", "runtime-missing")
    assert "own network namespace" in d.why and "0.0.0.0:40123" in d.why
    assert d.transient  # a port pick of the moment: the cell is run once more
    other = detail.replace("port is already allocated", "no such image")
    d = Judge().add(obs(runtime_status="created", state=v1_error(other)))
    assert d is not None and d.cause == "runtime-missing" and not d.transient
