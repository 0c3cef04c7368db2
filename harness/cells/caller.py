"""A caller cell: something that drives OpenHands from outside (an automation tool such as
n8n, a CI job, a script: matrix `[callers.NAME]`), run where a person runs it, with the URL
they gave it. The app starts as the cell's mode says and must answer the harness first (else
the cell is the app's, as any cell). Then the caller's container is started, and every call
of the cell from there on (the first look, the conversation, its watch, the tasks) is sent
from inside it (`CallerTransport`): the verdict is about the caller's path to OpenHands.

When the caller does not get through, the cause is read from what a probe from its namespace
saw (its own loopback, a name it cannot resolve, a port published on the host's loopback
only, a proxy, a firewall), decided in seconds; with `--remedies` each known fix of the
caller (remedies/callers.py) is proven by a caller of its own against the same app, and
shown as the change to the caller's `docker run` line.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
from docker.models.containers import Container

from harness import modes
from harness.cells.api import ApiCell, ApiWatch
from harness.cells.boot import BootClock
from harness.cells.diagnosis import Decision
from harness.cells.plan import CellPlan
from harness.cells.watch import watch_connect
from harness.errors import AdapterError
from harness.host import cleanup
from harness.host.containers import app_container
from harness.host.netprobe import NetProbe, bypasses_proxy
from harness.host.probes import probe_from, probe_here, proxy_for
from harness.matrix import Caller
from harness.model import Cause, Direction, RemedyTry, Verdict
from harness.openhands import Authenticates, Client, LlmSettings, client_for
from harness.remedies import callers as fixes

# One HTTP request from the caller's namespace, with the Python every OpenHands image has:
# urllib honours the caller's own HTTP_PROXY/NO_PROXY, as the HTTP clients of automation
# tools do. It prints one JSON line: the answer, or the error that stopped it.
PROGRAM = r"""
import base64, json, sys, urllib.error, urllib.request
q = json.loads(base64.b64decode(sys.argv[1]))
body = base64.b64decode(q["body"]) if q["body"] else None
req = urllib.request.Request(q["url"], data=body, method=q["method"], headers=q["headers"])
try:
    with urllib.request.urlopen(req, timeout=q["timeout"]) as r:
        out = {"status": r.status, "headers": list(r.headers.items()), "body": base64.b64encode(r.read()).decode()}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "headers": list(e.headers.items()), "body": base64.b64encode(e.read()).decode()}
except urllib.error.URLError as e:
    out = {"error": type(e.reason).__name__, "message": str(e.reason)}
except OSError as e:
    out = {"error": type(e).__name__, "message": str(e)}
print(json.dumps(out))
"""
# Not forwarded: what urllib sets itself, and compression it would not undo.
_HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding", "content-encoding"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
FIX_BUDGET = 60.0  # seconds for a fixed caller's conversation to connect (the app is up already)


class CallerTransport(httpx.BaseTransport):
    """httpx's requests, sent from inside the caller's container (PROGRAM, by docker exec)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read") or 30
        asked = {"method": request.method, "url": str(request.url), "timeout": timeout,
                 "headers": {k: v for k, v in request.headers.items() if k.lower() not in _HOP},
                 "body": base64.b64encode(request.read()).decode()}
        arg = base64.b64encode(json.dumps(asked).encode()).decode()
        try:
            code, output = self.container.exec_run(["python", "-c", PROGRAM, arg])
        except docker.errors.DockerException as e:
            raise httpx.ConnectError(f"the caller's container could not run the call: {str(e)[:200]}",
                                     request=request) from None
        try:
            answer = json.loads((output or b"").decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise httpx.ConnectError(f"the caller's call exited {code}: {(output or b'')[-200:]!r}",
                                     request=request) from None
        if "error" in answer:
            kind = httpx.ConnectTimeout if "timeout" in answer["error"].lower() else httpx.ConnectError
            raise kind(f"from the caller's container: {answer['error']}: {answer['message']}", request=request)
        headers = [(k, v) for k, v in answer["headers"] if k.lower() not in _HOP]
        return httpx.Response(answer["status"], headers=headers, content=base64.b64decode(answer["body"]),
                              request=request)


@dataclass(frozen=True)
class Placed:
    """A caller as it ran: its container, the network it is on, and the URL it was given."""

    container: Container
    network: str
    url: str


class CallerCell(ApiCell):
    """The app as its mode says, then the caller's calls from where the caller runs."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__(plan)
        assert self.plan.cell.caller is not None
        self.caller: Caller = self.plan.cell.caller
        self.result.caller = self.caller.name
        self.started = 0

    def launch(self) -> modes.AppLaunch:
        """The app published as the person's line publishes it (on every address), not on the
        loopback alone as other cells are: a caller in a container reaches the host's ports
        through its network's gateway, as it would beside a real deployment."""
        launch = self.app.launch()
        if launch.placed_publish:  # a deployment: where its line gives no address, every address
            pairs = zip(launch.publish or (), launch.placed_publish, strict=False)
            placed = tuple(replace(p, address="0.0.0.0") if not person.address and p.address.startswith("127.") else p
                           for person, p in pairs)
            placed += launch.placed_publish[len(placed):]
            return launch if placed == launch.placed_publish else self.widened(launch, placed_publish=placed)
        if launch.publish_all or launch.network_mode == "host" or launch.publish is not None:
            return launch
        return self.widened(launch, publish_all=True)

    def widened(self, launch: modes.AppLaunch, **placed: Any) -> modes.AppLaunch:
        note = ("the app's port is published on every address of this machine, as the person's line publishes it, "
                "not on its loopback alone as the harness's other cells are: a caller in a container reaches it "
                "through its network's gateway")
        self.result.notes.append(note)
        return replace(launch, placement=(*launch.placement, note), **placed)

    def connect(self, clock: BootClock) -> tuple[Client, str, Container] | None:
        started = self.start_app()
        if started is None:
            return None
        _, app = started
        placed = self.place(self.caller, app)
        self.result.caller_run = self.person_line(self.caller)
        t0 = time.monotonic()
        blocked = self.reach(placed, app)
        if blocked is not None:
            self.decide(blocked, time.monotonic() - t0, app)
            if self.plan.remedies:
                found = fixes.applicable(self.caller, self.result.connect.cause, self.app_network(app))
                only = self.plan.remedy_names
                self.result.remedies = [self.prove(fix, app) for fix in found if not only or fix.name in only]
            return None
        self.app.phase(f"the caller {self.caller.name} reached the app at {placed.url}")
        return self.converse(self.client_at(placed), app, clock)

    # -- the caller's container -------------------------------------------------------------

    def app_network(self, app: Container) -> str:
        """The app's own network: `host`, Docker's `bridge`, or the network of the cell's own."""
        app.reload()
        if app.attrs["HostConfig"].get("NetworkMode") == "host":
            return "host"
        return str(next(iter(app.attrs["NetworkSettings"].get("Networks") or {"bridge": None})))

    def place(self, caller: Caller, app: Container) -> Placed:
        """The caller's container on its network (as root, idle: its calls are exec'd), from
        the app's image, which has the Python its calls need."""
        assert self.launched is not None
        network = self.app_network(app) if caller.network == "app" else caller.network
        port = self.published_port(app)
        url = caller.url_for(port=port, app=self.app.name, app_port=self.launched.listen_port)
        self.started += 1
        options = [("--network", network), *(("--add-host", h) for h in caller.extra_hosts),
                   *(("-e", f"{k}={v}") for k, v in caller.env.items()), ("-u", "0"), ("--entrypoint", "sleep")]
        name = f"{self.resources.name}-caller{self.started if self.started > 1 else ''}"
        box = app_container(self.plan.images.app_image, [*options, ("--name", name)], ["infinity"],
                            {**self.resources.labels, cleanup.ROLE_LABEL: "caller"})
        container = self.resources.stack.enter_context(box).get_wrapped_container()
        self.app.phase(f"the caller {caller.name} started on the {network} network, given {url}")
        return Placed(container, network, url)

    def person_line(self, caller: Caller) -> str:
        """The caller as the person runs it beside their own line (docker_run): the URL with
        the app's port, name and network as written there, not as the cell placed them."""
        assert self.launched is not None
        at = self.launched
        written = next((p.host for p in at.publish or () if p.container == at.listen_port and p.host), None)
        url = caller.url_for(port=written or at.person_port, app=at.person_name or "openhands-app",
                             app_port=at.listen_port)
        network = (at.network or "bridge") if caller.network == "app" else caller.network
        return fixes.docker_run(replace(caller, network=network), url, self.plan.secrets)

    def published_port(self, app: Container) -> int:
        """The app's port on this machine: where the harness reaches it (AppLauncher.app_url)."""
        assert self.launched is not None
        return urlsplit(self.app.app_url(self.launched, app)).port or self.launched.listen_port

    def client_at(self, placed: Placed) -> Client:
        client = client_for(self.gen, placed.url, CallerTransport(placed.container))
        self.resources.on_close(client.close)
        if self.key is not None and isinstance(client, Authenticates):
            client.authenticate(self.key)
        return client

    # -- the decision ---------------------------------------------------------------------------

    def reach(self, placed: Placed, app: Container) -> Decision | None:
        """None when the caller's first look at the app's health answers; else why not."""
        seen, via = probe_caller(placed, self.gen.health_path)
        mine = probe_here("the harness (this machine)", "127.0.0.1", self.published_port(app), self.gen.health_path)
        return caller_decision(self.caller, placed, seen, via, mine, bindings(app, self.launched.listen_port
                                                                             if self.launched else 0))

    def prove(self, fix: fixes.Fix, app: Container) -> RemedyTry:
        """One fix, proven by a caller of its own against the same app: it reaches the app and
        a conversation it starts connects."""
        t0 = time.monotonic()
        placed = self.place(fix.caller, app)
        line = self.person_line(fix.caller)
        changed = {k: v for k, v in fix.caller.env.items() if self.caller.env.get(k) != v}
        if fix.caller.url != self.caller.url:
            changed["OPENHANDS_URL"] = placed.url
        tried = RemedyTry(name=fix.name, why=fix.why, verdict=Verdict.FAIL, direction=Direction.CALLER, asks=fix.asks,
                          docker_run=line,
                          env=changed,
                          network_mode=placed.network if fix.caller.network != self.caller.network else None,
                          extra_hosts=dict(h.split(":", 1) for h in fix.caller.extra_hosts
                                           if h not in self.caller.extra_hosts))
        blocked = self.reach(placed, app)
        if blocked is None:
            client = self.client_at(placed)
            try:
                client.store_settings(LlmSettings(model="openai/gpt-4o", api_key="oh-matrix-no-llm",
                                                  base_url="http://127.0.0.1:9/v1"))
                conversation = client.create_conversation(self.plan.message)
                watched = watch_connect(ApiWatch(self, client, conversation), app, self.firewall, FIX_BUDGET,
                                        self.app.phase, self.app.daemon)
                blocked = watched.decision
            except AdapterError as e:
                blocked = Decision(Verdict.FAIL, Cause.API_ERROR, f"the caller reached the app, then: {str(e)[:300]}",
                                   Direction.CALLER)
        tried.verdict, tried.seconds = blocked.verdict if blocked else Verdict.PASS, round(time.monotonic() - t0, 1)
        if blocked is not None and blocked.verdict != Verdict.PASS:
            tried.cause, tried.evidence = blocked.cause, blocked.why[:400]  # redacted with the result (runner)
        else:  # a proven fix, as the change to the caller's line (written to fixes/)
            tried.fix = fixes.diff(self.result.caller_run or "", line)
        self.app.phase(f"fix {fix.name}: {tried.verdict}")
        return tried


def probe_caller(placed: Placed, path: str) -> tuple[NetProbe, tuple[str, int] | None]:
    """One probe from the caller's namespace of its URL at `path`, through its own proxy when
    its HTTP client would use one (HTTP_PROXY, the host not in NO_PROXY); and that proxy."""
    u = urlsplit(placed.url)
    host, port = u.hostname or "", u.port or 80
    env = _env(placed.container)
    proxy = proxy_for(env)
    via = proxy if proxy and not bypasses_proxy(host, env.get("NO_PROXY") or env.get("no_proxy") or "") else None
    return probe_from(placed.container, f"the caller ({placed.network} network)", host, port, path, via=via), via


def _env(container: Container) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in container.attrs["Config"].get("Env") or [])


def bindings(app: Container, port: int) -> list[str]:
    """Where the daemon publishes the app's port on this machine (`ADDRESS:PORT`)."""
    found = (app.attrs.get("NetworkSettings") or {}).get("Ports", {}).get(f"{port}/tcp") or []
    return [f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}" for b in found]


def caller_decision(caller: Caller, placed: Placed, seen: NetProbe, via: tuple[str, int] | None, mine: NetProbe,
                    published: list[str], target: str = "the app") -> Decision | None:
    """What the caller's probe of its URL says: None when `target` answered it; else the
    cause, said from where the caller stands (pure: the unit tests feed it probes)."""
    if seen.tcp == "open" and (seen.http or "").startswith("HTTP/") and not _server_error(seen.http, via):
        return None
    host = urlsplit(placed.url).hostname or ""
    at = f"the caller ({caller.name}, in a container on the {placed.network} network) was given {placed.url}"
    where = (f"; {target} is published on this machine at {', '.join(published)}" if published
             else f"; {target} shares the host's network") + f" (this machine: {mine.line()})"
    probes = f" Probe: {seen.line()}"
    if via is not None:
        return Decision(Verdict.FAIL, Cause.PROXY, f"{at}, and its HTTP client sends that through its proxy "
                                                   f"{via[0]}:{via[1]} (HTTP_PROXY, {host} not in NO_PROXY), which "
                                                   f"{_proxy_said(seen)}{where}.{probes}", Direction.CALLER)
    if seen.dns != "ok":
        hint = (": Docker on Linux gives a container that name only with --add-host "
                "host.docker.internal:host-gateway") if host == "host.docker.internal" else ""
        return Decision(Verdict.FAIL, Cause.DNS_UNRESOLVED, f"{at}, and {host} does not resolve there "
                                                            f"({seen.resolver()}){hint}{where}.{probes}",
                        Direction.CALLER)
    if host in LOOPBACK_NAMES and placed.network != "host":
        return Decision(Verdict.FAIL, Cause.OWN_LOOPBACK,
                        f"{at}: {host} inside a container is the container's own loopback, where nothing of OpenHands "
                        f"listens ({_tcp(seen)}), not this machine's{where}.{probes}", Direction.CALLER)
    if seen.tcp == "refused" and placed.network != "host" and published and all(
            p.startswith("127.") for p in published):
        return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED,
                        f"{at}: {target}'s port is published on this machine's loopback only ({', '.join(published)}), "
                        f"which no container reaches: {host} refuses ({_tcp(seen)}){where}.{probes}", Direction.CALLER)
    cause = {"refused": Cause.CONNECTION_REFUSED, "timeout": Cause.CONNECT_TIMEOUT,
             "unreachable": Cause.CONNECTION_REJECTED}.get(seen.tcp or "", Cause.API_ERROR)
    return Decision(Verdict.FAIL, cause, f"{at}: {_tcp(seen)}{where}.{probes}", Direction.CALLER)


def _server_error(http: str | None, via: tuple[str, int] | None) -> bool:
    """A proxy's own answer (502, 503, 403) is not the app's: only through a proxy."""
    parts = (http or "").split()
    return via is not None and len(parts) > 1 and parts[1][:1] in "45"


def _tcp(p: NetProbe) -> str:
    return {"refused": "the connect is refused", "timeout": "its connects get no answer",
            "unreachable": "its connects are rejected", "open": f"it answers {p.http or 'nothing'}"}.get(
        p.tcp or "", p.error or "no connect")


def _proxy_said(p: NetProbe) -> str:
    if p.dns != "ok":
        return f"does not resolve ({p.error or p.dns})"
    if p.tcp != "open":
        return f"does not take the connect ({p.tcp})"
    return f"answered '{p.http}'"
