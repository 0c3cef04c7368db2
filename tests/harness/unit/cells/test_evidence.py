"""A verdict's evidence is a pure function of the decision, the last look and the facts
gathered at the decision: what a failing cell shows, in order, without a daemon."""

from harness.cells.diagnosis import Decision, Observation
from harness.cells.evidence import Facts, evidence
from harness.host.netprobe import NetProbe
from harness.model import Cause, Direction, Verdict
from harness.openhands import RuntimeState


def probe(where: str, tcp: str) -> NetProbe:
    return NetProbe(where=where, host="host.docker.internal", port=30001, dns="ok", addresses=["172.17.0.1"],
                    tcp=tcp, tcp_ms=3)


def test_a_failure_shows_its_reason_probes_and_the_runtimes_account_in_order() -> None:
    d = Decision(Verdict.FAIL, Cause.CONNECT_TIMEOUT, "app -> runtime: 3 connects dropped", Direction.CALLBACK)
    obs = Observation(t=6.0, app_status="running", state=RuntimeState(ready=False, status="STARTING"),
                      app_probe=probe("app (network default)", "timeout"), self_probe=probe("runtime", "open"),
                      proxy={"HTTP_PROXY": "http://proxy:3128"})
    facts = Facts(runtime_state="rt: running, exit code 0", callback_story=["Webhook post attempt 1 failed"],
                  daemon_events="10:00:00 create, 10:00:01 start", runtime_name="rt", runtime_log="log of rt",
                  app_log="log of the app")
    shown = [(e.source, e.text) for e in evidence(d, obs, facts)]
    assert [s for s, _ in shown] == ["harness", "api", "probe", "probe", "app", "runtime", "runtime-log", "daemon",
                                     "runtime-log", "app-log"]
    assert shown[0][1] == d.why and shown[1][1] == "app reports STARTING"
    assert shown[7][1] == "rt: 10:00:00 create, 10:00:01 start"


def test_a_pass_shows_no_logs() -> None:
    d = Decision(Verdict.PASS, None, "the app reports its runtime ready")
    shown = evidence(d, Observation(t=1.0, app_status="running"), Facts())
    assert [e.source for e in shown] == ["harness"]
