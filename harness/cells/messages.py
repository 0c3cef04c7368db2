"""What a connect decision and its evidence say, in words: one builder per message, named after
what it says, so the rules of diagnosis.py and the assembly of evidence.py read at a glance and
a message is found by its name. Each takes what it names and returns text; none decides
anything (which message applies is the judge's), and none does I/O.
"""

from __future__ import annotations

from harness.host.netprobe import NetProbe
from harness.host.ruleset import Rule

# -- the judge's decisions (diagnosis.py) --------------------------------------------------------


def ready(status: str) -> str:
    return f"runtime ready ({status})"


def app_exited(status: str, exit_code: int | None) -> str:
    return f"app container {status}, exit code {exit_code}"


def target_at(p: NetProbe) -> str:
    """The probe's target and the addresses it resolved to."""
    return f"{p.host}:{p.port}" + (f" ({', '.join(p.addresses)})" if p.addresses else "")


def does_not_resolve(label: str, p: NetProbe) -> str:
    return f"{label}: {p.host} does not resolve in the {p.where} container"


def dropped(label: str, timeouts: int, p: NetProbe, target_listens: bool, rules: list[Rule] | None) -> str:
    listening = ", while the target listens on its own port" if target_listens else ""
    return (f"{label}: {timeouts} connects to {p.host}:{p.port} dropped "
            f"(no answer, no refusal){listening}" + quoted_rules(rules, "drop"))


def refused_while_listening(label: str, p: NetProbe, maybe: list[Rule]) -> str:
    """Refused while the target listens; `maybe`: rejects on the path the reading is not sure of."""
    return (f"{label}: {p.host}:{p.port} refused while the target listens"
            + (f"; a host firewall rule on that path may have answered it instead, with "
               f"{maybe[0].sends}: {rule_line(maybe[0])}" if maybe else ""))


def rejected_on_the_way(label: str, at: str, p: NetProbe, fits: list[Rule], rules: list[Rule] | None,
                        target: str) -> str:
    """An ICMP unreachable answered the SYN; `fits`: the rejects on the path that send it."""
    return (f"{label}: the connect to {at} from the {caller(p)} was rejected on the way: "
            f"an ICMP unreachable answered the SYN ({p.error}), not the target, not a timeout"
            + (answered_by(fits, target) if fits else quoted_rules(rules, "reject")))


def refused_by_the_firewall(label: str, at: str, p: NetProbe, sure: list[Rule], target: str) -> str:
    return (f"{label}: the connect to {at} from the {caller(p)} was refused by the host "
            f"firewall, not by the target ({p.error or 'connection refused'})"
            + answered_by(sure, target))


def loopback_only(label: str, p: NetProbe, whose: str, published: list[str], caller: str) -> str:
    return (f"{label}: {p.host}:{p.port} refused; {whose} port is published on {', '.join(published)} "
            f"only, the {caller} connects to {', '.join(p.addresses or [])}")


def answered_by(rules: list[Rule], target: str) -> str:
    """The rejecting rule(s) on the path, each with what it sends back, and what the target
    itself showed."""
    said = " | ".join(f"{r.sends}: {rule_line(r)}" for r in rules[:2])
    return (f"; the host firewall's rule on that path answers it with {said}" if len(rules) == 1 else
            f"; the host firewall's rules on that path answer it, with {said}") + (f"; {target}" if target else "")


def rule_line(r: Rule) -> str:
    unsure = "" if r.sure else (" (this reading cannot tell for sure that it meets the connect: "
                                f"{', '.join(r.unweighed) or 'an accept it cannot weigh comes first'})")
    where = "iptables" if r.source == "iptables" else f"nft, chain {r.chain}:"  # nft's text names no chain
    via = (f" (the connect reaches it through the daemon's own NAT, iptables -t nat {r.via}: a published "
           "port's DNAT to its container on another bridge, which the daemon sets up for every bridge when "
           "its userland proxy is off)" if r.via else "")
    return f"{where} {r.text}{via}{unsure}"


def quoted_rules(rules: list[Rule] | None, action: str) -> str:
    """The firewall's own rule on that path, when the harness could read it."""
    if rules is None:
        return ("; the host firewall's rules on this path were not read (not root, a remote daemon, "
                "or a path through NAT)")
    hits = [r for r in rules if r.action == action] or rules
    if not hits:
        return "; no rule of the host's firewall (iptables, nftables) on that path does it"
    return "; the host firewall's rule on that path: " + " | ".join(rule_line(r) for r in hits[:2])


def runtime_seen(own: NetProbe | None, runtime_status: str) -> str:
    """Whether the runtime listened (`own`: its probe of its own port), for the evidence of a
    connect to it that failed."""
    if own is None:
        return f"the runtime's own port was not looked at (its container: {runtime_status})"
    if own.tcp == "open":
        return "the runtime listens on its own port (from inside its namespace)"
    return f"the runtime does not listen on its own port yet (from inside its namespace: {own.tcp or own.dns})"


def caller(p: NetProbe) -> str:
    return p.where.split(" (")[0]


def proxy_url(proxy: dict[str, str]) -> str:
    upper = {k.upper(): v for k, v in proxy.items()}
    return upper.get("HTTP_PROXY") or upper.get("ALL_PROXY") or "?"


def goes_through_the_proxy(p: NetProbe, proxy: dict[str, str]) -> str:
    return (f"app -> runtime: the direct path to {p.host}:{p.port} is open and the runtime "
            f"listens, but the app's HTTP client goes through {proxy_url(proxy)} "
            "(NO_PROXY does not cover the runtime host)")


def proxy_unreachable(target: str, proxy: dict[str, str], via: NetProbe) -> str:
    return (f"app -> runtime: the app's HTTP client sends {target} to its proxy {proxy_url(proxy)} "
            f"(NO_PROXY does not cover it), and the proxy cannot be reached from the app: "
            f"{via.line()}")


def proxy_answers(target: str, proxy: dict[str, str], via: NetProbe) -> str:
    return (f"app -> runtime: the direct path to {target} is open and the runtime listens, but the "
            f"app's HTTP client goes through {proxy_url(proxy)}, which answers '{via.http}' "
            f"for it")


def gave_up_while_starting(error: str) -> str:
    return f"the app gave up while the runtime was still starting (its own port refused): {error}"


def grace_ran_out(error: str) -> str:
    return f"the app's startup grace ran out before the sandbox answered /health, with the path to it open: {error}"


def runtime_not_started(error: str, taken: bool) -> str:
    """The daemon refused the runtime the app asked for; `taken`: a host port in use then."""
    hint = (" (the app chose the sandbox's host port inside its own network namespace, "
            "where the host's ports in use are invisible)" if taken else "")
    return f"the daemon refused to start the runtime the app asked for{hint}: {error}"


def app_reports(error: str) -> str:
    return f"the app reports {error}"


def webhooks_unreached(hooks: list[NetProbe]) -> str:
    first = hooks[0]
    return (f"sandbox -> app (callback): the conversation started, but none of the sandbox's "
            f"{len(hooks)} webhook(s) reaches the app ({first.host}:{first.port}: "
            f"{'DNS ' + first.dns if first.dns != 'ok' else 'TCP ' + str(first.tcp)}): the agent runs in "
            f"the sandbox and the app never hears of it; the user sees a conversation that never updates")


def sandbox_proxy(hooks: list[NetProbe], through: list[NetProbe], proxy: dict[str, str]) -> str:
    """The sandbox's webhooks go through its own proxy (OH_AGENT_SERVER_ENV), which carries none."""
    first, via = hooks[0], through[0]
    said = (f"answers '{via.http}'" if via.tcp == "open" else
            f"cannot be reached from the sandbox ({via.line()})")
    return (f"sandbox -> app (callback): the sandbox's HTTP client sends its {len(hooks)} webhook(s) "
            f"({first.host}:{first.port}) to its proxy {proxy_url(proxy)} (its environment, from "
            f"OH_AGENT_SERVER_ENV; NO_PROXY does not cover {first.host}), which {said} when asked for the app; "
            f"the direct path: {first.line()}. The agent runs in the sandbox and the app never hears of it")


def sandbox_proxy_at_start(error: str, direct: NetProbe | None, via: NetProbe, proxy: dict[str, str]) -> str:
    """The app reports the sandbox's start failed; the sandbox's calls to the app go to its proxy."""
    said = (f"answers '{via.http}'" if via.tcp == "open" else
            f"cannot be reached from the sandbox ({via.line()})")
    target = f"{direct.host}:{direct.port}" if direct else "the app"
    return (f"sandbox -> app (callback): the sandbox's HTTP client sends its calls to the app ({target}) to its "
            f"proxy {proxy_url(proxy)} (its environment, from OH_AGENT_SERVER_ENV; NO_PROXY does not cover it), "
            f"which {said} when asked for the app; the app reports: {error[:300]}"
            + (f"; the direct path: {direct.line()}" if direct else ""))


def runtime_exited(status: str, exit_code: int | None, oom: bool, restarts: int, error: str) -> str:
    return (f"runtime container {status} with exit code {exit_code}"
            + (", OOM-killed" if oom else "") + (f", restarted {restarts} times" if restarts else "")
            + (f"; the daemon says: {error}" if error else ""))


def runtime_keeps_exiting(restarts: int, exit_code: int | None) -> str:
    return f"runtime container keeps exiting: restarted {restarts} times, last exit code {exit_code}"


def created_not_started(exit_code: int | None, error: str, taken: bool) -> str:
    """Created, never started; `taken`: a host port the app chose was in use at that moment."""
    hint = (" (a host port the app chose for it was in use on the host at that moment: the app checks "
            "a port is free in its own network namespace, which may not be the host's)" if taken else "")
    return (f"the daemon created the runtime container but could not start it (exit code "
            f"{exit_code}){hint}: {error or 'no error text from the daemon'}")


RUNTIME_DISAPPEARED = "the runtime container disappeared"


def runtime_failed_to_start(runtime_status: str, failure: str) -> str:
    return (f"the app reports its runtime failed to start, and the daemon has "
            f"{'no such container' if runtime_status == 'absent' else 'it created, not started'}: "
            f"{failure}")


def no_docker(line: str, given: str | None) -> str:
    """The app cannot reach Docker: what it was given (None: nothing) and its own words."""
    if "No such file or directory: 'docker'" in line:
        why = ("the app cannot start its runtime: it runs the `docker` CLI to start it, and its container has none "
               "(the image ships no docker CLI" + (", and it was given no daemon either)" if given is None else ")"))
    elif given is None:
        why = ("the app cannot start its runtime: it was given no Docker daemon (no socket mounted at "
               "/var/run/docker.sock, no DOCKER_HOST)")
    else:
        why = f"the app cannot reach the Docker daemon it was given ({given}) to start its runtime"
    return f"{why}; it says: {line}"


def nothing_observed(budget: float) -> str:
    return f"nothing observed within {budget:.0f} s"


def no_runtime_within(budget: float) -> str:
    return f"the app created no runtime container within {budget:.0f} s"


def proxied_at_budget(p: NetProbe, proxy: dict[str, str]) -> str:
    return (f"the direct path to {p.host}:{p.port} is open but the app's HTTP "
            f"client goes through {proxy_url(proxy)}")


def not_ready(budget: float, status: str, runtime_status: str, p: NetProbe | None, own: NetProbe | None) -> str:
    """Not ready at the budget with nothing explaining it: what the watch looked at."""
    watched = [f"the runtime container {runtime_status}"]
    if p:
        watched.append(f"the app's path to {p.host}:{p.port} {p.tcp or 'DNS ' + p.dns}")
    if own:
        watched.append(f"the runtime's own port {own.tcp}")
    return (f"not ready within {budget:.0f} s (app says {status}); nothing observed explains the wait "
            f"(watched every 2 s: {', '.join(watched)})")


# -- the evidence of a decision (evidence.py) ----------------------------------------------------


def decision_words(why: str, mechanism: str | None) -> str:
    """The decision's own words, then the daemon's mechanism behind it where known."""
    return why + (f"; {mechanism}" if mechanism else "")


def app_says(status: str) -> str:
    return f"app reports {status}"


def proxy_env(proxy: dict[str, str]) -> str:
    return "proxy env: " + ", ".join(f"{k}={v}" for k, v in proxy.items())


def daemon_events(runtime: str | None, events: str) -> str:
    return f"{runtime}: {events}"


def ran_elsewhere(app_network: str, runtime: str, runtime_network: str, url: str | None) -> str:
    """The runtime ran on another network than the app's, and where the app reached it."""
    return (f"the app ran on network {app_network}, its runtime {runtime} on {runtime_network}; "
            f"the app reached it at {url or '?'}")
