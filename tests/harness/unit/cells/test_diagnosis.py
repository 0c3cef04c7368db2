"""The rules that turn observations into verdicts (the observations themselves come from
the engine tests and the matrix)."""


from harness.cells.diagnosis import REFUSALS_TO_DECIDE, TIMEOUTS_TO_DECIDE, Judge, Observation
from harness.host.netprobe import NetProbe
from harness.openhands import RuntimeState
from harness.openhands.v1 import failure


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



def test_app_giving_up_on_a_booting_runtime_is_its_grace_not_an_api_error() -> None:
    gave_up = v1_error("start task ERROR: Sandbox entered error state")
    d = Judge().add(obs(state=gave_up, self_probe=probe(where="runtime", tcp="refused")))
    assert d is not None and d.cause == "startup-grace" and "still starting" in d.why and d.rerun == "alone"
    d = Judge().add(obs(state=gave_up, self_probe=probe(where="runtime", tcp="open"), app_probe=probe(tcp="open")))
    assert d is not None and d.cause == "startup-grace" and "startup grace" in d.why and d.rerun == "alone"
    other = v1_error("start task ERROR: MCP Connection Failure")
    d = Judge().add(obs(state=other, self_probe=probe(where="runtime", tcp="open")))
    assert d is not None and d.cause == "api-error" and d.rerun is None


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


def test_a_callback_to_an_app_published_on_loopback_only_is_named_at_once() -> None:
    """`127.0.0.1:3000:3000`: the sandbox calls the app back at the bridge gateway, where no packet
    reaches it; one refusal is proof, and the evidence says why."""
    cb = probe(where="sandbox", port=3000, tcp="refused")
    d = Judge().add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"), callback_probe=cb,
                        callback_published_on=["127.0.0.1"]))
    assert d is not None and (d.cause, d.direction) == ("connection-refused", "sandbox->app")
    assert "the app's port is published on 127.0.0.1 only, the sandbox connects to" in d.why


def test_a_proxy_that_keeps_an_open_path_from_working_is_named() -> None:
    from harness.cells.diagnosis import PROXIED_TO_DECIDE

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
    assert d.rerun == "again"  # a port pick of the moment: the cell is run once more
    other = detail.replace("port is already allocated", "no such image")
    d = Judge().add(obs(runtime_status="created", state=v1_error(other)))
    assert d is not None and d.cause == "runtime-missing" and d.rerun is None


def test_the_daemons_own_account_decides_at_once() -> None:
    # created, never started: the daemon's State.Error says why
    err = 'exec: "/openhands/micromamba/bin/micromamba": stat /openhands/micromamba/bin/micromamba: no such file'
    d = Judge().add(obs(runtime_status="created", runtime_error=err))
    assert d is not None and (d.cause, d.verdict) == ("runtime-missing", "fail") and err in d.why
    # created, never started because a host port the app picked was in use: run once more
    taken = ("driver failed programming external connectivity on endpoint openhands-runtime-8780: Error starting "
             "userland proxy: listen tcp4 0.0.0.0:40540: bind: address already in use")
    d = Judge().add(obs(runtime_status="created", runtime_exit=128, runtime_error=taken))
    assert d is not None and d.cause == "runtime-missing" and d.rerun == "again" and "0.0.0.0:40540" in d.why
    # RootlessKit's port driver still holding the port for another spec: taken as well
    held = ("driver failed programming external connectivity on endpoint openhands-runtime-8780: Error starting "
            "userland proxy: error while calling PortManager.AddPort(): conflict with ID 7")
    d = Judge().add(obs(runtime_status="created", runtime_exit=128, runtime_error=held))
    assert d is not None and d.rerun == "again" and "conflict with ID 7" in d.why
    assert Judge().add(obs(runtime_status="created", runtime_error=err)).rerun is None  # type: ignore[union-attr]
    # created, no error yet: still starting
    assert Judge().add(obs(runtime_status="created")) is None
    assert Judge().add(obs(runtime_status="created", runtime_exit=0)) is None
    # created with an exit code the daemon set when its start failed, no text
    d = Judge().add(obs(runtime_status="created", runtime_exit=128))
    assert d is not None and d.cause == "runtime-missing" and "exit code 128" in d.why
    # exited with the daemon's words and an OOM flag
    d = Judge().add(obs(runtime_status="exited", runtime_exit=137, runtime_oom=True))
    assert d is not None and d.cause == "runtime-exited" and "OOM-killed" in d.why and "137" in d.why
    # a restart loop
    d = Judge().add(obs(runtime_status="restarting", runtime_restarts=3, runtime_exit=1))
    assert d is not None and d.cause == "runtime-exited" and "restarted 3 times" in d.why
    # never created, and the app's own log says its start failed
    line = "ERROR - [runtime abc] Error: Instance openhands-runtime-abc FAILED to start container!"
    d = Judge().add(obs(runtime_status="absent", app_failure=line))
    assert d is not None and d.cause == "runtime-missing" and line in d.why


def test_a_proxy_the_app_cannot_reach_is_named_before_the_runtime_boots() -> None:
    dead = probe(where="app via its proxy", host="127.0.0.1", port=9, tcp="refused", addresses=["127.0.0.1"])
    d = Judge().add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="refused"),
                        proxy={"HTTP_PROXY": "http://127.0.0.1:9"}, proxy_probe=dead))
    assert d is not None and d.cause == "proxy" and d.direction == "app->runtime" and "127.0.0.1:9" in d.why
    # exempt by NO_PROXY: the proxy's state says nothing about the runtime path
    assert Judge().add(obs(app_probe=probe(tcp="open"), proxy={"HTTP_PROXY": "http://127.0.0.1:9",
                                                              "NO_PROXY": "host.docker.internal"},
                           proxy_probe=dead)) is None
    # a live proxy that answers 502 for the runtime, while the runtime listens
    blind = probe(where="app via its proxy", host="proxy", port=3128, tcp="open", http="HTTP/1.1 502 Bad Gateway")
    d = Judge().add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"),
                        proxy={"HTTP_PROXY": "http://proxy:3128"}, proxy_probe=blind))
    assert d is not None and d.cause == "proxy" and "502" in d.why


def test_the_budget_says_what_was_watched() -> None:
    j = Judge()
    j.add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open")))
    d = j.at_budget(150)
    assert d.cause == "budget-exceeded" and "nothing observed explains the wait" in d.why
    assert "the runtime's own port open" in d.why


def test_a_sandbox_whose_proxy_carries_none_of_its_webhooks_is_named_on_the_callback() -> None:
    """1.x: OH_AGENT_SERVER_ENV gave the sandbox HTTP_PROXY; the app says ready (it reached the
    sandbox), the direct path to the app is open, and the proxy answers its own error."""
    ready = RuntimeState(ready=True, status="RUNNING/READY")
    hook = probe(where="sandbox webhook 0", port=3000, tcp="open", http="HTTP/1.1 404 Not Found")
    refused = probe(where="sandbox webhook 0 via its proxy", host="10.219.0.2", port=61888, tcp="open",
                    addresses=["10.219.0.2"], http="HTTP/1.0 500 Unable to connect")
    proxied = {"HTTP_PROXY": "http://10.219.0.2:61888"}
    d = Judge().add(obs(state=ready, webhook_probes=[hook], sandbox_proxy=proxied, webhook_proxy_probes=[refused]))
    assert d is not None and (d.verdict, d.cause, d.direction) == ("fail", "proxy", "sandbox->app"), d
    assert "http://10.219.0.2:61888" in d.why and "'HTTP/1.0 500 Unable to connect'" in d.why
    assert "OH_AGENT_SERVER_ENV" in d.why and "host.docker.internal:3000" in d.why
    # a proxy nobody can reach: said with the probe of it
    gone = probe(where="sandbox webhook 0 via its proxy", host="10.219.0.2", port=61888, tcp="timeout",
                 addresses=["10.219.0.2"])
    d = Judge().add(obs(state=ready, webhook_probes=[hook], sandbox_proxy=proxied, webhook_proxy_probes=[gone]))
    assert d is not None and d.cause == "proxy" and "cannot be reached from the sandbox" in d.why
    # a proxy that carries the call (the app's health answered 200 through it): a pass
    carried = probe(where="sandbox webhook 0 via its proxy", host="10.219.0.2", port=61888, tcp="open",
                    http="HTTP/1.0 200 OK")
    d = Judge().add(obs(state=ready, webhook_probes=[hook], sandbox_proxy=proxied, webhook_proxy_probes=[carried]))
    assert d is not None and d.verdict == "pass"
    # NO_PROXY exempts the webhook (the watch then asks no proxy): a pass
    exempt = {**proxied, "NO_PROXY": "host.docker.internal"}
    d = Judge().add(obs(state=ready, webhook_probes=[hook], sandbox_proxy=exempt))
    assert d is not None and d.verdict == "pass"
    # one of two webhooks bypasses the proxy: the app hears of the conversation by that one
    other = probe(where="sandbox webhook 1", host="172.17.0.1", port=3000, tcp="open", http="HTTP/1.1 404 Not Found")
    d = Judge().add(obs(state=ready, webhook_probes=[hook, other], sandbox_proxy=proxied,
                        webhook_proxy_probes=[refused]))
    assert d is not None and d.verdict == "pass"


def test_a_sandbox_start_the_app_reports_failed_while_the_sandboxs_proxy_cannot_reach_the_app_is_proxy() -> None:
    """1.11 with OH_AGENT_SERVER_ENV={"HTTP_PROXY": ...}: the agent-server fails the start
    (the app reports the 500 it got), and the sandbox's proxy answers its error for the app."""
    failed = v1_error("Server error '500 Internal Server Error' for url 'http://host.docker.internal:41429/api/'")
    direct = probe(where="sandbox", port=3000, tcp="open")
    via = probe(where="sandbox calling the app via its proxy", host="10.219.0.2", port=61888, tcp="open",
                addresses=["10.219.0.2"], http="HTTP/1.0 500 Unable to connect")
    proxied = {"HTTP_PROXY": "http://10.219.0.2:61888"}
    d = Judge().add(obs(state=failed, callback_probe=direct, sandbox_proxy=proxied, callback_proxy_probe=via))
    assert d is not None and (d.cause, d.direction) == ("proxy", "sandbox->app"), d
    assert "'HTTP/1.0 500 Unable to connect'" in d.why and "the app reports: Server error" in d.why
    # without the proxy look (none, or it carries the call) the app's own error stands
    d = Judge().add(obs(state=failed, callback_probe=direct))
    assert d is not None and d.cause == "api-error"
    ok = probe(where="sandbox calling the app via its proxy", host="10.219.0.2", port=61888, tcp="open",
               http="HTTP/1.0 200 OK")
    d = Judge().add(obs(state=failed, callback_probe=direct, sandbox_proxy=proxied, callback_proxy_probe=ok))
    assert d is not None and d.cause == "api-error"
