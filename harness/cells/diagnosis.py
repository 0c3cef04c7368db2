"""From what was observed to a verdict and a cause (the vocabulary of docs/words.md).

No I/O: the watch (watch.py) gathers the observations from the daemon, the app's API and
the probes, and `Judge` turns them into a decision, so every rule is unit-testable. `Judge`
is not a pure function but a small state machine: it counts streaks of probe outcomes
across looks (a decision needs a streak, not a blip), one Judge per watch.
A rule decides early only on what is already proven; everything else waits for
readiness or the budget.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field
from typing import Literal

from harness.cells import messages as say
from harness.host.netprobe import NetProbe, bypasses_proxy
from harness.host.ruleset import Rule
from harness.model import Cause, Direction, Verdict
from harness.openhands import RuntimeState, port_taken

# Consecutive dropped SYNs (each a full probe timeout) that prove a drop, not a hiccup; one
# is proof once the target answers on its own port from inside (it listens, its port is
# published before it starts: a SYN unanswered for the probe's whole timeout was dropped).
TIMEOUTS_TO_DECIDE = 3
TIMEOUTS_TO_DECIDE_LISTENING = 1
# Refusals while the runtime answers from its own namespace: it listens, but not where the
# app is knocking.
REFUSALS_TO_DECIDE = 2
# Looks at an open path to a listening runtime that the app still does not call ready, with
# an HTTP proxy in the app's environment that does not exempt the runtime host. The app
# polls every 2 s, so a working direct path would have made it ready by then.
PROXIED_TO_DECIDE = 4


@dataclass
class Observation:
    t: float  # seconds since the conversation was created
    app_status: str  # docker state of the app container
    app_exit: int | None = None
    runtime_status: str = "absent"  # absent | created | running | restarting | exited | dead
    runtime_exit: int | None = None
    runtime_oom: bool = False
    runtime_error: str = ""  # the daemon's State.Error: why it could not start the container
    runtime_restarts: int = 0
    app_failure: str | None = None  # the app's own log line naming a runtime failure
    docker_failure: str | None = None  # the app's own log lines where it fails to reach Docker
    state: RuntimeState | None = None
    api_error: str | None = None
    app_probe: NetProbe | None = None
    self_probe: NetProbe | None = None  # from inside the runtime, to its own port
    callback_probe: NetProbe | None = None  # V1: from the sandbox to the app's callback port
    proxy_probe: NetProbe | None = None  # from the app to its HTTP proxy, asking it for the runtime
    # Once the app says ready (V1): from the sandbox to each webhook it posts events to.
    webhook_probes: list[NetProbe] = field(default_factory=list)
    published_on: list[str] = field(default_factory=list)  # host addresses the probed port is published on
    callback_published_on: list[str] = field(default_factory=list)  # ... and the app's port the sandbox calls
    # The host firewall's rules that meet each probe's path (firewall.matching), read by the
    # cell once a probe was refused, rejected or dropped; None: not read (not root, remote).
    app_rules: list[Rule] | None = None
    callback_rules: list[Rule] | None = None
    proxy: dict[str, str] = field(default_factory=dict)
    # Once the app says ready (V1): the sandbox's own proxy variables (OH_AGENT_SERVER_ENV may
    # give it some), and for each webhook its HTTP client sends through that proxy, a look from
    # the sandbox at the proxy asking it for the app's health.
    sandbox_proxy: dict[str, str] = field(default_factory=dict)
    webhook_proxy_probes: list[NetProbe] = field(default_factory=list)
    # Before it is ready: the same look through the sandbox's proxy at where it calls the app
    # back (callback_probe's target); None: it has no proxy for that host.
    callback_proxy_probe: NetProbe | None = None
    runtime_url: str | None = None  # where the app reaches its runtime, as far as known by now
    # The runtime answered by now, to the app (ready) or on its own port from inside: the
    # boot meter's runtime clock stops at the first look that says so.
    runtime_answered: bool = False


FORWARD = Direction.FORWARD
CALLBACK = Direction.CALLBACK


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    cause: Cause | None
    why: str
    direction: Direction | None = None  # which way the network broke, when it did
    # Run the cell once more before believing this: "alone" when one of OpenHands' own clocks
    # ran out on a runtime that was still booting (the machine's load may be why: the rerun
    # takes every boot slot), "again" for a host port that was taken at that moment.
    rerun: Literal["again", "alone"] | None = None


class _Direction:
    """Streaks of one direction's probe outcomes; a decision needs a streak, not a blip."""

    def __init__(self, label: str, direction: Direction) -> None:
        self.label = label
        self.direction = direction
        self.timeouts = 0
        self.refusals = 0

    def judge(self, p: NetProbe | None, target_listens: bool, rules: list[Rule] | None = None,
              target: str = "") -> Decision | None:
        """One look at this direction's probe; `rules`: the firewall's on its path (None: not
        read), `target`: what was seen of the target itself, in words, for the evidence."""
        if p is None:
            return None
        if p.dns == "fail":
            return Decision(Verdict.FAIL, Cause.DNS_UNRESOLVED, say.does_not_resolve(self.label, p), self.direction)
        at = say.target_at(p)
        if p.tcp in ("unreachable", "refused") and (decided := self._rejected(p, at, rules, target)):
            return decided
        self.timeouts = self.timeouts + 1 if p.tcp == "timeout" else 0
        if self.timeouts >= (TIMEOUTS_TO_DECIDE_LISTENING if target_listens else TIMEOUTS_TO_DECIDE):
            return Decision(Verdict.FAIL, Cause.CONNECT_TIMEOUT,
                            say.dropped(self.label, self.timeouts, p, target_listens, rules), self.direction)
        self.refusals = self.refusals + 1 if (p.tcp == "refused" and target_listens) else 0
        if self.refusals >= REFUSALS_TO_DECIDE:
            maybe = [r for r in rules or [] if _answers(r, p)]  # a reject the reading is not sure meets it
            return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED, say.refused_while_listening(self.label, p, maybe),
                            self.direction)
        return None

    def _rejected(self, p: NetProbe, at: str, rules: list[Rule] | None, target: str) -> Decision | None:
        """A connect a firewall's reject answered, decided on the one probe. An ICMP unreachable
        is proof by itself. A refusal is the firewall's when a reject on its path that the
        reading is sure of answers with what a caller sees as a refusal (a TCP reset, an ICMP
        port unreachable: a plain REJECT's): INPUT comes before any socket, so it is the rule's
        whether the target listens yet or not."""
        fits = [r for r in rules or [] if _answers(r, p)]
        if p.tcp == "unreachable":
            return Decision(Verdict.FAIL, Cause.CONNECTION_REJECTED,
                            say.rejected_on_the_way(self.label, at, p, fits, rules, target), self.direction)
        sure = [r for r in fits if r.sure]
        if not sure:
            return None
        return Decision(Verdict.FAIL, Cause.CONNECTION_REJECTED,
                        say.refused_by_the_firewall(self.label, at, p, sure, target), self.direction)


def _answers(r: Rule, p: NetProbe) -> bool:
    """Whether the reject `r` answers a SYN with what the probe got back."""
    code = r.fails_with
    if code is None:
        return False
    if p.tcp == "refused":
        return code == errno.ECONNREFUSED
    seen = re.match(r"\[Errno (\d+)\]", p.error or "")
    return p.tcp == "unreachable" and code != errno.ECONNREFUSED and (seen is None or int(seen[1]) == code)


# The causes a Docker daemon the app cannot reach shows as, before its own line is read.
HIDES_DOCKER = (Cause.APP_EXITED, Cause.API_ERROR, Cause.RUNTIME_MISSING, Cause.BUDGET_EXCEEDED)


def no_docker(line: str, given: str | None) -> Decision:
    """The app cannot start its runtime because it cannot reach Docker: what it was given
    (AppLaunch.daemon) and its own words."""
    return Decision(Verdict.FAIL, Cause.DOCKER_UNREACHABLE, say.no_docker(line, given))


def unmasked(d: Decision, line: str | None, given: str | None) -> Decision:
    """A failure the app's own Docker error (`line`, openhands.docker_failure) explains: it
    exited, its API errs, no runtime came. Decided as that, the cause the user can fix."""
    return no_docker(line, given) if line and d.verdict == Verdict.FAIL and d.cause in HIDES_DOCKER else d


class Judge:
    def __init__(self, daemon: str | None = "the daemon") -> None:
        self.daemon = daemon  # how the app reaches a daemon (AppLaunch.daemon); None: given none
        self.forward = _Direction("app -> runtime", FORWARD)
        self.callback = _Direction("sandbox -> app (callback)", CALLBACK)
        self.last: Observation | None = None
        self.runtime_seen = False
        self.proxied = 0

    def add(self, o: Observation) -> Decision | None:
        self.last = o
        if o.state and o.state.ready:
            return self._callbacks(o) or Decision(Verdict.PASS, None, say.ready(o.state.status))
        if o.docker_failure and o.runtime_status == "absent":
            return no_docker(o.docker_failure, self.daemon)
        if o.app_status not in ("running", "created", "restarting"):
            return Decision(Verdict.FAIL, Cause.APP_EXITED, say.app_exited(o.app_status, o.app_exit))
        if o.runtime_status != "absent":
            self.runtime_seen = True
        if decided := self._daemon(o):
            return decided
        runtime_listens = bool(o.self_probe and o.self_probe.tcp == "open")
        # Refused, and the daemon publishes the port on loopback only while the caller knocks
        # at another address: no packet can reach the target, booted or not.
        if decided := (_loopback_only(o.app_probe, o.published_on, "app -> runtime", "the runtime's", "app", FORWARD)
                       or _loopback_only(o.callback_probe, o.callback_published_on, "sandbox -> app (callback)",
                                         "the app's", "sandbox", CALLBACK)):
            return decided
        # The app is up (its API answered the harness), so it listens for callbacks.
        decided = (self.forward.judge(o.app_probe, runtime_listens, o.app_rules,
                                      say.runtime_seen(o.self_probe, o.runtime_status))
                   or self.callback.judge(o.callback_probe, True, o.callback_rules,
                                          "the app listens (its API answers the harness)"))
        if decided:
            return decided
        if decided := self._proxy(o, runtime_listens):
            return decided
        p = o.app_probe
        open_path = bool(p and p.tcp == "open" and runtime_listens)
        self.proxied = self.proxied + 1 if open_path and p and o.proxy and _proxied(p.host, o.proxy) else 0
        if p and self.proxied >= PROXIED_TO_DECIDE:
            return Decision(Verdict.FAIL, Cause.PROXY, say.goes_through_the_proxy(p, o.proxy), FORWARD)
        if o.state and o.state.error and (decided := _sandbox_proxy_at_start(o)):
            return decided
        if o.state and o.state.error:
            # The app gave up on its own and no probe shows a network cause.
            if o.runtime_status == "running" and o.self_probe and o.self_probe.tcp == "refused":
                return Decision(Verdict.FAIL, Cause.STARTUP_GRACE, say.gave_up_while_starting(o.state.error),
                                rerun="alone")
            if o.state.failure == "startup-grace" and not (o.app_probe and o.app_probe.tcp != "open"):
                # Raised only when /health failed after the app's startup grace
                # (OpenHands' docker_sandbox_service.py, SANDBOX_STARTUP_GRACE_SECONDS, 15 s),
                # and the network path is open: the sandbox was too slow, not unreachable.
                return Decision(Verdict.FAIL, Cause.STARTUP_GRACE, say.grace_ran_out(o.state.error), rerun="alone")
            if o.state.failure in ("start-failed", "port-taken"):
                taken = o.state.failure == "port-taken"
                return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING, say.runtime_not_started(o.state.error, taken),
                                rerun="again" if taken else None)
            return Decision(Verdict.FAIL, Cause.API_ERROR, say.app_reports(o.state.error))
        return None

    def _callbacks(self, o: Observation) -> Decision | None:
        """Ready as the app says, but a V1 cell passes only when the sandbox's calls back reach
        the app too: none of its webhooks answering means the agent runs and the app never hears."""
        hooks = o.webhook_probes
        if decided := _sandbox_proxy(o):
            return decided
        if not hooks or any(p.http for p in hooks):
            return None
        first = hooks[0]
        cause = (Cause.DNS_UNRESOLVED if first.dns == "fail" else
                 Cause.CONNECT_TIMEOUT if first.tcp == "timeout" else
                 Cause.CONNECTION_REJECTED if first.tcp == "unreachable" else Cause.CONNECTION_REFUSED)
        return Decision(Verdict.FAIL, cause, say.webhooks_unreached(hooks), CALLBACK)

    def _daemon(self, o: Observation) -> Decision | None:
        """The daemon's own account of the runtime container, decided as soon as it has one."""
        if o.runtime_status in ("exited", "dead"):
            return Decision(Verdict.FAIL, Cause.RUNTIME_EXITED, say.runtime_exited(
                o.runtime_status, o.runtime_exit, o.runtime_oom, o.runtime_restarts, o.runtime_error))
        if o.runtime_status == "restarting" or (o.runtime_restarts and o.runtime_status == "running"):
            return Decision(Verdict.FAIL, Cause.RUNTIME_EXITED, say.runtime_keeps_exiting(o.runtime_restarts,
                                                                                          o.runtime_exit))
        if o.runtime_status == "created" and (o.runtime_error or o.runtime_exit not in (None, 0)):
            # Created, never started: the daemon could not run its entrypoint or set it up.
            taken = port_taken(o.runtime_error)  # a pick of the moment, not the mode's
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                            say.created_not_started(o.runtime_exit, o.runtime_error, taken),
                            rerun="again" if taken else None)
        if o.runtime_status == "absent" and self.runtime_seen:
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING, say.RUNTIME_DISAPPEARED)
        if o.runtime_status in ("absent", "created") and o.app_failure:
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                            say.runtime_failed_to_start(o.runtime_status, o.app_failure))
        return None

    def _proxy(self, o: Observation, runtime_listens: bool) -> Decision | None:
        """The app's HTTP client sends runtime requests to a proxy: decided as soon as the proxy
        is shown unable to carry them (the runtime need not have booted for a dead proxy)."""
        p, via = o.app_probe, o.proxy_probe
        if not (p and via and o.proxy and _proxied(p.host, o.proxy)):
            return None
        target = f"{p.host}:{p.port}"
        if via.dns != "ok" or via.tcp in ("refused", "timeout", "error"):
            return Decision(Verdict.FAIL, Cause.PROXY, say.proxy_unreachable(target, o.proxy, via), FORWARD)
        if runtime_listens and p.tcp == "open" and via.http and via.http.split()[1:2] != ["200"]:
            return Decision(Verdict.FAIL, Cause.PROXY, say.proxy_answers(target, o.proxy, via), FORWARD)
        return None

    def at_budget(self, budget: float) -> Decision:
        o = self.last
        if o is None:
            return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED, say.nothing_observed(budget))
        if o.api_error:
            return Decision(Verdict.FAIL, Cause.API_ERROR, o.api_error)
        if o.runtime_status == "absent":
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING, say.no_runtime_within(budget))
        p = o.app_probe
        if p and p.tcp == "open" and o.proxy and _proxied(p.host, o.proxy):
            return Decision(Verdict.FAIL, Cause.PROXY, say.proxied_at_budget(p, o.proxy))
        status = o.state.status if o.state else "unknown"
        return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED,
                        say.not_ready(budget, status, o.runtime_status, p, o.self_probe))


def _sandbox_proxy(o: Observation) -> Decision | None:
    """Every webhook of the sandbox goes through its proxy, and the proxy carries none of
    them: unreachable, or answering with an error of its own (the app's health answers 200)."""
    through = o.webhook_proxy_probes
    if not (through and o.sandbox_proxy and len(through) == len(o.webhook_probes)):
        return None
    if any(_carried(v) for v in through):
        return None
    return Decision(Verdict.FAIL, Cause.PROXY, say.sandbox_proxy(o.webhook_probes, through, o.sandbox_proxy),
                    CALLBACK)


def _sandbox_proxy_at_start(o: Observation) -> Decision | None:
    """The app reports the sandbox's start failed, and the sandbox's calls to the app go
    through its proxy, which does not carry them (1.x: the agent-server fails the
    conversation's start when it cannot reach the app's MCP through it)."""
    via = o.callback_proxy_probe
    if via is None or not o.sandbox_proxy or _carried(via) or o.state is None:
        return None
    return Decision(Verdict.FAIL, Cause.PROXY, say.sandbox_proxy_at_start(o.state.error or "", o.callback_probe, via,
                                                                          o.sandbox_proxy), CALLBACK)


def _carried(via: NetProbe) -> bool:
    return via.tcp == "open" and (via.http or "").split()[1:2] == ["200"]


def _loopback_only(p: NetProbe | None, published: list[str], label: str, whose: str, caller: str,
                   direction: Direction) -> Decision | None:
    if not (p and p.tcp == "refused" and _loopback(published) and not _loopback(p.addresses)):
        return None
    return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED, say.loopback_only(label, p, whose, published, caller),
                    direction)


def _loopback(addresses: list[str] | None) -> bool:
    return bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses or [])


def _proxied(host: str, proxy: dict[str, str]) -> bool:
    upper = {k.upper(): v for k, v in proxy.items()}
    if not (upper.get("HTTP_PROXY") or upper.get("ALL_PROXY")):
        return False
    return not bypasses_proxy(host, upper.get("NO_PROXY", ""))
