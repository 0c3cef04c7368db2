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

from harness.host.firewall import Rule
from harness.host.netprobe import NetProbe, bypasses_proxy
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
            return Decision(Verdict.FAIL, Cause.DNS_UNRESOLVED,
                            f"{self.label}: {p.host} does not resolve in the {p.where} container", self.direction)
        at = f"{p.host}:{p.port}" + (f" ({', '.join(p.addresses)})" if p.addresses else "")
        if p.tcp in ("unreachable", "refused") and (decided := self._rejected(p, at, rules, target)):
            return decided
        self.timeouts = self.timeouts + 1 if p.tcp == "timeout" else 0
        if self.timeouts >= (TIMEOUTS_TO_DECIDE_LISTENING if target_listens else TIMEOUTS_TO_DECIDE):
            listening = ", while the target listens on its own port" if target_listens else ""
            return Decision(Verdict.FAIL, Cause.CONNECT_TIMEOUT,
                            f"{self.label}: {self.timeouts} connects to {p.host}:{p.port} dropped "
                            f"(no answer, no refusal){listening}" + _quoted(rules, "drop"), self.direction)
        self.refusals = self.refusals + 1 if (p.tcp == "refused" and target_listens) else 0
        if self.refusals >= REFUSALS_TO_DECIDE:
            maybe = [r for r in rules or [] if _answers(r, p)]  # a reject the reading is not sure meets it
            return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED,
                            f"{self.label}: {p.host}:{p.port} refused while the target listens"
                            + (f"; a host firewall rule on that path may have answered it instead, with "
                               f"{maybe[0].sends}: {_rule_line(maybe[0])}" if maybe else ""), self.direction)
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
                            f"{self.label}: the connect to {at} from the {_caller(p)} was rejected on the way: "
                            f"an ICMP unreachable answered the SYN ({p.error}), not the target, not a timeout"
                            + (_answered_by(fits, target) if fits else _quoted(rules, "reject")), self.direction)
        sure = [r for r in fits if r.sure]
        if not sure:
            return None
        return Decision(Verdict.FAIL, Cause.CONNECTION_REJECTED,
                        f"{self.label}: the connect to {at} from the {_caller(p)} was refused by the host "
                        f"firewall, not by the target ({p.error or 'connection refused'})"
                        + _answered_by(sure, target), self.direction)


def _answers(r: Rule, p: NetProbe) -> bool:
    """Whether the reject `r` answers a SYN with what the probe got back."""
    code = r.fails_with
    if code is None:
        return False
    if p.tcp == "refused":
        return code == errno.ECONNREFUSED
    seen = re.match(r"\[Errno (\d+)\]", p.error or "")
    return p.tcp == "unreachable" and code != errno.ECONNREFUSED and (seen is None or int(seen[1]) == code)


def _answered_by(rules: list[Rule], target: str) -> str:
    """The rejecting rule(s) on the path, each with what it sends back, and what the target
    itself showed."""
    said = " | ".join(f"{r.sends}: {_rule_line(r)}" for r in rules[:2])
    return (f"; the host firewall's rule on that path answers it with {said}" if len(rules) == 1 else
            f"; the host firewall's rules on that path answer it, with {said}") + (f"; {target}" if target else "")


def _rule_line(r: Rule) -> str:
    unsure = "" if r.sure else (" (this reading cannot tell for sure that it meets the connect: "
                                f"{', '.join(r.unweighed) or 'an accept it cannot weigh comes first'})")
    where = "iptables" if r.source == "iptables" else f"nft, chain {r.chain}:"  # nft's text names no chain
    via = (f" (the connect reaches it through the daemon's own NAT, iptables -t nat {r.via}: a published "
           "port's DNAT to its container on another bridge, which the daemon sets up for every bridge when "
           "its userland proxy is off)" if r.via else "")
    return f"{where} {r.text}{via}{unsure}"


def _runtime_seen(o: Observation) -> str:
    """Whether the runtime listened, for the evidence of a connect to it that failed."""
    own = o.self_probe
    if own is None:
        return f"the runtime's own port was not looked at (its container: {o.runtime_status})"
    if own.tcp == "open":
        return "the runtime listens on its own port (from inside its namespace)"
    return f"the runtime does not listen on its own port yet (from inside its namespace: {own.tcp or own.dns})"


def _caller(p: NetProbe) -> str:
    return p.where.split(" (")[0]


def _quoted(rules: list[Rule] | None, action: str) -> str:
    """The firewall's own rule on that path, when the harness could read it."""
    if rules is None:
        return ("; the host firewall's rules on this path were not read (not root, a remote daemon, "
                "or a path through NAT)")
    hits = [r for r in rules if r.action == action] or rules
    if not hits:
        return "; no rule of the host's firewall (iptables, nftables) on that path does it"
    return "; the host firewall's rule on that path: " + " | ".join(_rule_line(r) for r in hits[:2])


# The causes a Docker daemon the app cannot reach shows as, before its own line is read.
HIDES_DOCKER = (Cause.APP_EXITED, Cause.API_ERROR, Cause.RUNTIME_MISSING, Cause.BUDGET_EXCEEDED)


def no_docker(line: str, given: str | None) -> Decision:
    """The app cannot start its runtime because it cannot reach Docker: what it was given
    (AppLaunch.daemon) and its own words."""
    if given is None:
        why = ("the app cannot start its runtime: it was given no Docker daemon (no socket mounted at "
               "/var/run/docker.sock, no DOCKER_HOST)")
    else:
        why = f"the app cannot reach the Docker daemon it was given ({given}) to start its runtime"
    return Decision(Verdict.FAIL, Cause.DOCKER_UNREACHABLE, f"{why}; it says: {line}")


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
            return self._callbacks(o) or Decision(Verdict.PASS, None, f"runtime ready ({o.state.status})")
        if o.docker_failure and o.runtime_status == "absent":
            return no_docker(o.docker_failure, self.daemon)
        if o.app_status not in ("running", "created", "restarting"):
            return Decision(Verdict.FAIL, Cause.APP_EXITED, f"app container {o.app_status}, exit code {o.app_exit}")
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
        decided = (self.forward.judge(o.app_probe, runtime_listens, o.app_rules, _runtime_seen(o))
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
            return Decision(Verdict.FAIL, Cause.PROXY,
                            f"app -> runtime: the direct path to {p.host}:{p.port} is open and the runtime "
                            f"listens, but the app's HTTP client goes through {_proxy_url(o.proxy)} "
                            "(NO_PROXY does not cover the runtime host)", FORWARD)
        if o.state and o.state.error:
            # The app gave up on its own and no probe shows a network cause.
            if o.runtime_status == "running" and o.self_probe and o.self_probe.tcp == "refused":
                return Decision(Verdict.FAIL, Cause.STARTUP_GRACE,
                                f"the app gave up while the runtime was still starting (its own port "
                                f"refused): {o.state.error}", rerun="alone")
            if o.state.failure == "startup-grace" and not (o.app_probe and o.app_probe.tcp != "open"):
                # Raised only when /health failed after the app's startup grace
                # (OpenHands' docker_sandbox_service.py, SANDBOX_STARTUP_GRACE_SECONDS, 15 s),
                # and the network path is open: the sandbox was too slow, not unreachable.
                return Decision(Verdict.FAIL, Cause.STARTUP_GRACE,
                                f"the app's startup grace ran out before the sandbox answered /health, "
                                f"with the path to it open: {o.state.error}", rerun="alone")
            if o.state.failure in ("start-failed", "port-taken"):
                taken = o.state.failure == "port-taken"
                hint = (" (the app chose the sandbox's host port inside its own network namespace, "
                        "where the host's ports in use are invisible)" if taken else "")
                return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                                f"the daemon refused to start the runtime the app asked for{hint}: {o.state.error}",
                                rerun="again" if taken else None)
            return Decision(Verdict.FAIL, Cause.API_ERROR, f"the app reports {o.state.error}")
        return None

    def _callbacks(self, o: Observation) -> Decision | None:
        """Ready as the app says, but a V1 cell passes only when the sandbox's calls back reach
        the app too: none of its webhooks answering means the agent runs and the app never hears."""
        hooks = o.webhook_probes
        if not hooks or any(p.http for p in hooks):
            return None
        first = hooks[0]
        cause = (Cause.DNS_UNRESOLVED if first.dns == "fail" else
                 Cause.CONNECT_TIMEOUT if first.tcp == "timeout" else
                 Cause.CONNECTION_REJECTED if first.tcp == "unreachable" else Cause.CONNECTION_REFUSED)
        return Decision(Verdict.FAIL, cause,
                        f"sandbox -> app (callback): the conversation started, but none of the sandbox's "
                        f"{len(hooks)} webhook(s) reaches the app ({first.host}:{first.port}: "
                        f"{'DNS ' + first.dns if first.dns != 'ok' else 'TCP ' + str(first.tcp)}): the agent runs in "
                        f"the sandbox and the app never hears of it; the user sees a conversation that never updates",
                        CALLBACK)

    def _daemon(self, o: Observation) -> Decision | None:
        """The daemon's own account of the runtime container, decided as soon as it has one."""
        if o.runtime_status in ("exited", "dead"):
            oom = ", OOM-killed" if o.runtime_oom else ""
            restarts = f", restarted {o.runtime_restarts} times" if o.runtime_restarts else ""
            error = f"; the daemon says: {o.runtime_error}" if o.runtime_error else ""
            return Decision(Verdict.FAIL, Cause.RUNTIME_EXITED, f"runtime container {o.runtime_status} with exit "
                            f"code {o.runtime_exit}{oom}{restarts}{error}")
        if o.runtime_status == "restarting" or (o.runtime_restarts and o.runtime_status == "running"):
            return Decision(Verdict.FAIL, Cause.RUNTIME_EXITED,
                            f"runtime container keeps exiting: restarted {o.runtime_restarts} times, last exit "
                            f"code {o.runtime_exit}")
        if o.runtime_status == "created" and (o.runtime_error or o.runtime_exit not in (None, 0)):
            # Created, never started: the daemon could not run its entrypoint or set it up.
            taken = port_taken(o.runtime_error)  # a pick of the moment, not the mode's
            hint = (" (a host port the app chose for it was in use on the host at that moment: the app checks "
                    "a port is free in its own network namespace, which may not be the host's)" if taken else "")
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                            f"the daemon created the runtime container but could not start it (exit code "
                            f"{o.runtime_exit}){hint}: {o.runtime_error or 'no error text from the daemon'}",
                            rerun="again" if taken else None)
        if o.runtime_status == "absent" and self.runtime_seen:
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING, "the runtime container disappeared")
        if o.runtime_status in ("absent", "created") and o.app_failure:
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                            f"the app reports its runtime failed to start, and the daemon has "
                            f"{'no such container' if o.runtime_status == 'absent' else 'it created, not started'}: "
                            f"{o.app_failure}")
        return None

    def _proxy(self, o: Observation, runtime_listens: bool) -> Decision | None:
        """The app's HTTP client sends runtime requests to a proxy: decided as soon as the proxy
        is shown unable to carry them (the runtime need not have booted for a dead proxy)."""
        p, via = o.app_probe, o.proxy_probe
        if not (p and via and o.proxy and _proxied(p.host, o.proxy)):
            return None
        target = f"{p.host}:{p.port}"
        if via.dns != "ok" or via.tcp in ("refused", "timeout", "error"):
            return Decision(Verdict.FAIL, Cause.PROXY,
                            f"app -> runtime: the app's HTTP client sends {target} to its proxy {_proxy_url(o.proxy)} "
                            f"(NO_PROXY does not cover it), and the proxy cannot be reached from the app: "
                            f"{via.line()}", FORWARD)
        if runtime_listens and p.tcp == "open" and via.http and via.http.split()[1:2] != ["200"]:
            return Decision(Verdict.FAIL, Cause.PROXY,
                            f"app -> runtime: the direct path to {target} is open and the runtime listens, but the "
                            f"app's HTTP client goes through {_proxy_url(o.proxy)}, which answers '{via.http}' "
                            f"for it", FORWARD)
        return None

    def at_budget(self, budget: float) -> Decision:
        o = self.last
        if o is None:
            return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED, f"nothing observed within {budget:.0f} s")
        if o.api_error:
            return Decision(Verdict.FAIL, Cause.API_ERROR, o.api_error)
        if o.runtime_status == "absent":
            return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                            f"the app created no runtime container within {budget:.0f} s")
        p = o.app_probe
        if p and p.tcp == "open" and o.proxy and _proxied(p.host, o.proxy):
            return Decision(Verdict.FAIL, Cause.PROXY,
                            f"the direct path to {p.host}:{p.port} is open but the app's HTTP "
                            f"client goes through {_proxy_url(o.proxy)}")
        status = o.state.status if o.state else "unknown"
        watched = [f"the runtime container {o.runtime_status}"]
        if p:
            watched.append(f"the app's path to {p.host}:{p.port} {p.tcp or 'DNS ' + p.dns}")
        if o.self_probe:
            watched.append(f"the runtime's own port {o.self_probe.tcp}")
        return Decision(Verdict.FAIL, Cause.BUDGET_EXCEEDED,
                        f"not ready within {budget:.0f} s (app says {status}); nothing observed explains the wait "
                        f"(watched every 2 s: {', '.join(watched)})")


def _loopback_only(p: NetProbe | None, published: list[str], label: str, whose: str, caller: str,
                   direction: Direction) -> Decision | None:
    if not (p and p.tcp == "refused" and _loopback(published) and not _loopback(p.addresses)):
        return None
    return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED,
                    f"{label}: {p.host}:{p.port} refused; {whose} port is published on {', '.join(published)} "
                    f"only, the {caller} connects to {', '.join(p.addresses or [])}", direction)


def _loopback(addresses: list[str] | None) -> bool:
    return bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses or [])


def _proxy_url(proxy: dict[str, str]) -> str:
    upper = {k.upper(): v for k, v in proxy.items()}
    return upper.get("HTTP_PROXY") or upper.get("ALL_PROXY") or "?"


def _proxied(host: str, proxy: dict[str, str]) -> bool:
    upper = {k.upper(): v for k, v in proxy.items()}
    if not (upper.get("HTTP_PROXY") or upper.get("ALL_PROXY")):
        return False
    return not bypasses_proxy(host, upper.get("NO_PROXY", ""))
