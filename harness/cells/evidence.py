"""A connect verdict's evidence: what the daemon and the containers showed when the
decision was made is gathered once (`gather`, which reads), and the evidence is a pure
function of the decision, the last look and those facts (`evidence`), so what a verdict
shows is tested without a daemon."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import docker
from docker.models.containers import Container

from harness.cells import messages as say
from harness.cells.diagnosis import Decision, Observation
from harness.cells.facts import daemon_events, network_mode, state_line
from harness.cells.watch import Watch
from harness.host import docker_host, rootlesskit
from harness.host.containers import tail
from harness.model import Cause, Direction, Evidence, Source, Verdict, strip_ansi


@dataclass(frozen=True)
class Facts:
    """What the containers and the daemon showed at the decision (empty for a pass)."""

    runtime_state: str | None = None  # facts.state_line of the runtime
    callback_story: list[str] = field(default_factory=list)  # its log of calls to the app, event counts
    daemon_events: str = ""  # the daemon's events for the runtime since the conversation began
    runtime_name: str | None = None
    runtime_log: str | None = None
    app_log: str | None = None
    # The daemon's own mechanism behind the decision, where the harness knows it (a rootless
    # daemon's gateway, host/rootlesskit.py): said after the decision's words.
    mechanism: str | None = None


def gather(client: docker.DockerClient, d: Decision, watch: Watch | None, app: Container | None,
           since: float | None, obs: Observation | None = None) -> Facts:
    """The facts a failing verdict shows; `since`: when the conversation was created."""
    if d.verdict == Verdict.PASS:
        return Facts()
    runtime = watch.runtime() if watch is not None else None
    app_log = strip_ansi(tail(app)) if app is not None else None
    why = mechanism(client, d, obs)
    if runtime is None:
        return Facts(app_log=app_log, mechanism=why)
    return Facts(mechanism=why, runtime_state=state_line(runtime),
                 callback_story=watch.callback_story(runtime) if watch and d.direction == Direction.CALLBACK else [],
                 daemon_events=daemon_events(client, str(runtime.name), since or time.time() - 300),
                 runtime_name=str(runtime.name), runtime_log=tail(runtime), app_log=app_log)


def mechanism(client: docker.DockerClient, d: Decision, obs: Observation | None) -> str | None:
    """A refused connect on a rootless daemon to a bridge gateway: RootlessKit's namespace,
    where its docker-proxy listens on the loopback only."""
    if d.cause != Cause.CONNECTION_REFUSED or obs is None or not docker_host.rootless(client):
        return None
    probe = obs.callback_probe if d.direction == Direction.CALLBACK else obs.app_probe
    kit = docker_host.rootless_kit(client)
    if kit is None or probe is None or not probe.addresses or probe.addresses[0] not in docker_host.gateways(client):
        return None
    return rootlesskit.refused_at_gateway(kit, probe.host, probe.addresses[0], probe.port)


def evidence(d: Decision, obs: Observation | None, facts: Facts) -> list[Evidence]:
    """The decision's own words, the app's account, every probe of the last look, the
    proxy it runs behind, then (failing) the runtime's state, story, events and logs."""
    out = [Evidence(source=Source.HARNESS, text=say.decision_words(d.why, facts.mechanism))]
    if obs is not None:
        if obs.state:
            out.append(Evidence(source=Source.API, text=say.app_says(obs.state.status)))
        for probe in (obs.app_probe, obs.self_probe, obs.callback_probe, obs.proxy_probe, *obs.webhook_probes):
            if probe:
                out.append(Evidence(source=Source.PROBE, text=probe.line()))
        if obs.proxy:
            out.append(Evidence(source=Source.APP, text=say.proxy_env(obs.proxy)))
    if facts.runtime_state is not None:
        out.append(Evidence(source=Source.RUNTIME, text=facts.runtime_state))
        out += [Evidence(source=Source.RUNTIME_LOG, text=line) for line in facts.callback_story]
        if facts.daemon_events:
            out.append(Evidence(source=Source.DAEMON, text=say.daemon_events(facts.runtime_name, facts.daemon_events)))
        out.append(Evidence(source=Source.RUNTIME_LOG, text=facts.runtime_log or ""))
    if facts.app_log is not None:
        out.append(Evidence(source=Source.APP_LOG, text=facts.app_log))
    return out


def network_note(app: Container, runtime: Container | None, url: str | None) -> str | None:
    """Where the runtime ran when it is not where the app is (a custom network holds only
    the app: neither generation has a setting to put its runtime there), and how the app
    reached it, so a user knows what the pass means."""
    if runtime is None:
        return None
    ours, theirs = network_mode(app), network_mode(runtime)
    if ours == theirs:
        return None
    return say.ran_elsewhere(ours, str(runtime.name), theirs, url)
