"""A docker-workspace caller's cell: a script or CI job that drives the SDK's `DockerWorkspace`
(openhands-workspace), run where the person runs it (matrix `[callers.NAME]` with
`drives = "docker-workspace"`). There is no app: the caller itself starts the agent-server,
with the docker CLI through the daemon's socket (`docker run -d --rm -p PORT:8000 ...
--host 0.0.0.0`), then waits up to 120 s for `HOST/health`, where HOST is the `host=` it was
given or `http://127.0.0.1:PORT`, before "Container failed to become healthy in time".

The harness runs that code in the caller's container (the SDK's own, unchanged) and watches
from outside while it waits: as soon as the agent-server container it started answers on its
own port, one probe from the caller's namespace of the address the SDK polls says whether the
caller can ever reach it, and why not (its own loopback, a name it cannot resolve, a proxy),
in seconds. When it connects, the caller's `execute_command` runs a command in the workspace
and the harness checks its effect in the agent-server's container. With `--remedies` each
known fix of the caller (remedies/callers.py) is proven by a caller of its own.

The agent-server container carries no label of the harness's (DockerWorkspace names it
`agent-server-<uuid>`): it is told by the host port the cell gave (`host_port=`), named in the
run registry as soon as it is seen, and removed with the cell.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import docker
from docker.models.containers import Container

from harness import endpoint
from harness.cells import admission
from harness.cells.caller import Placed, caller_decision, probe_caller
from harness.cells.cell import CellCore
from harness.cells.conversations import created_at
from harness.cells.diagnosis import Decision
from harness.host import cleanup
from harness.host.containers import app_container, free_port, read_file, tail
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from, probe_here
from harness.matrix import WORKSPACE_URL, Caller
from harness.model import Cause, Direction, RemedyTry, TaskResult, Verdict, strip_ansi
from harness.remedies import callers as fixes

PREFIX = "agent-server-"  # DockerWorkspace._start_container's --name (agent-server-<uuid4>)
HEALTH = "/health"  # what DockerWorkspace._wait_for_health polls
LOOK = 0.5
CLAMP = "OH_MATRIX_NOFILE"  # the caller image's docker wrapper lowers the open-files ask to it (images/workspace.py)
FINAL = (Cause.OWN_LOOPBACK, Cause.DNS_UNRESOLVED)  # decided before the agent-server answers
SDK_WAIT = 120  # DockerWorkspace's health_check_timeout default, left as the person has it
CHECKED = "/tmp/oh-matrix-checked"  # the harness has checked the command's effect: the script may end
TASK = "workspace-command"
CHECK_FILE = "/workspace/oh-matrix-check.txt"  # what the caller's command writes, read in the agent-server

# The person's code, as the SDK's docs write it, with the cell's port and host; each step
# said on a line of its own (OH-MATRIX {json}) among the SDK's own output.
PROGRAM = r"""
import base64, json, os, sys, time
a = json.loads(base64.b64decode(sys.argv[1]))
def say(**kw):
    print("OH-MATRIX " + json.dumps(kw), flush=True)
try:
    from openhands.workspace import DockerWorkspace
    kw = {"server_image": a["image"], "host_port": a["port"]}
    if a["host"]:
        kw["host"] = a["host"]
    t = time.monotonic()
    ws = DockerWorkspace(**kw)
    say(event="ready", host=ws.host, seconds=round(time.monotonic() - t, 1))
    r = ws.execute_command(a["command"], timeout=60)
    say(event="command", exit_code=r.exit_code, stdout=r.stdout[-1000:], stderr=r.stderr[-1000:])
    end = time.monotonic() + 120
    while not os.path.exists(a["checked"]) and time.monotonic() < end:
        time.sleep(0.2)
    ws.cleanup()
    say(event="done")
except BaseException as e:
    say(event="error", type=type(e).__name__, message=str(e)[-3000:])
"""


@dataclass
class Script:
    """The person's code running in the caller's container, its lines read as they come."""

    container: Container
    events: list[dict[str, Any]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self, args: dict[str, Any]) -> None:
        arg = base64.b64encode(json.dumps(args).encode()).decode()
        api = self.container.client.api
        exec_id = api.exec_create(self.container.id, ["python", "-c", PROGRAM, arg])["Id"]
        stream = api.exec_start(exec_id, stream=True)
        threading.Thread(target=self._read, args=(stream,), daemon=True, name="oh-matrix-workspace").start()

    def _read(self, stream: Any) -> None:
        pending = ""
        try:
            for chunk in stream:
                pending += chunk.decode(errors="replace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._line(line)
        except docker.errors.DockerException:
            pass  # the caller's container went with the cell
        finally:
            self._line(pending)
            self.done.set()

    def _line(self, line: str) -> None:
        if line.startswith("OH-MATRIX "):
            self.events.append(json.loads(line.removeprefix("OH-MATRIX ")))
        elif line.strip():
            self.output.append(strip_ansi(line.strip()))

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    def said(self) -> str:
        return " | ".join(self.output[-4:])[-600:]


@dataclass
class Started:
    """The agent-server container the caller's DockerWorkspace started."""

    container: Container
    bindings: list[str]


def find(client: docker.DockerClient, port: int, since: float) -> Started | None:
    """The agent-server container published on the cell's `port`, created since `since`."""
    for c in client.containers.list(all=True, filters={"name": PREFIX}, ignore_removed=True):
        if created_at(c.attrs.get("Created", "")) < since - 2:
            continue
        binds = ((c.attrs.get("HostConfig") or {}).get("PortBindings") or {}).get("8000/tcp") or []
        if any(str(b.get("HostPort")) == str(port) for b in binds):
            return Started(c, [f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}" for b in binds])
    return None


def refused_ulimit(message: str) -> bool:
    """The daemon's words when a container's ulimit is above what it may grant."""
    return "rlimit" in message and "operation not permitted" in message


def sdk_decision(kind: str, message: str, started: bool, limit: int | None) -> Decision:
    """What DockerWorkspace's own error says, when it stopped before it connected (pure)."""
    words = f"DockerWorkspace raised {kind}: {message[:900]}"
    if refused_ulimit(message):
        return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING,
                        f"the daemon could not start the agent-server container DockerWorkspace asked for: its "
                        f"docker run asks --ulimit nofile=65536:65536 (openhands-workspace's own, fixed), and this "
                        f"daemon's own hard limit of open files is {limit or 'lower'} (`ulimit -Hn` in a container it "
                        f"starts), which it cannot raise (no CAP_SYS_RESOURCE: an LXC guest, a dockerd whose "
                        f"LimitNOFILE is low). {words}")
    if "Docker is not available" in message or "Cannot connect to the Docker daemon" in message:
        return Decision(Verdict.FAIL, Cause.DOCKER_UNREACHABLE, words, Direction.CALLER)
    if "Container stopped unexpectedly" in message:
        return Decision(Verdict.FAIL, Cause.AGENT_SERVER_EXITED, words)
    if not started and "Failed to run docker container" in message:
        return Decision(Verdict.FAIL, Cause.RUNTIME_MISSING, f"the daemon refused the caller's docker run: {words}")
    return Decision(Verdict.FAIL, Cause.API_ERROR, words, Direction.CALLER)


class WorkspaceCell(CellCore):
    """The caller's DockerWorkspace, watched from outside; its command checked in the container."""

    def __init__(self, plan: Any) -> None:
        super().__init__(plan)
        assert plan.cell.caller is not None
        self.caller: Caller = plan.cell.caller
        self.result.caller = self.caller.name
        self.started = 0
        self.clamp: int | None = None  # the daemon's open-files limit, once it refused the caller's ask

    def body(self) -> None:
        server, image = self.plan.images.agent_server_image, self.plan.images.workspace_image
        if server is None or image is None:
            self.error(Cause.IMAGE_UNAVAILABLE, self.plan.images.workspace_error or "no docker-workspace caller image")
            return
        if endpoint.app_socket() is None:
            self.result.connect.reason = ("a docker-workspace caller mounts the daemon's socket, and this daemon "
                                          "is reached over tcp://: its socket is not on this machine")
            return
        self.image, self.server = image, server
        self.result.caller_run = self.person_line(self.caller)
        self.app.phase(f"the caller {self.caller.name} runs DockerWorkspace({server}) on the "
                       f"{self.caller.network} network")
        waiting = f"waiting for a boot slot ({self.plan.boot_slots} on this machine)"
        with admission.slot(self.plan.boot_slots, self.plan.alone, lambda: self.app.phase(waiting)) as waited:
            self.result.boot.slot_wait, self.result.boot.slots = waited, self.plan.boot_slots
            decision, seconds, run = self.attempt(self.caller)
        self.decide(decision, seconds)
        if decision.verdict == Verdict.PASS and run is not None:
            self.result.tasks = [self.command_task(run)]
        if not self.plan.remedies:
            return
        only = self.plan.remedy_names
        if self.clamp is not None:  # the daemon's limit first: what the caller meets once it is raised
            raised = self.prove(fixes.daemon_open_files(self.caller, self.clamp))
            self.result.remedies.append(raised)
            decision = Decision(raised.verdict, raised.cause, raised.evidence or "", Direction.CALLER)
        if decision.direction == Direction.CALLER and decision.verdict == Verdict.FAIL:
            found = fixes.applicable(self.caller, decision.cause, "bridge")
            self.result.remedies += [self.prove(fix) for fix in found if not only or fix.name in only]

    # -- one run of the person's code ---------------------------------------------------------

    def attempt(self, caller: Caller) -> tuple[Decision, float, Attempt | None]:
        """The caller's code run once: its decision, the seconds it took, and the run (for
        its command) when it connected."""
        port = free_port()
        placed = self.place(caller, port, self.clamp)
        script = Script(placed.container)
        token = secrets.token_hex(6)
        since, t0 = time.time(), time.monotonic()
        given = caller.url_for(port=port, app="", app_port=8000) if caller.url != WORKSPACE_URL else ""
        script.start({"image": self.server, "port": port, "host": given, "checked": CHECKED,
                      "command": f"echo {token} > {CHECK_FILE} && cat {CHECK_FILE}"})
        run = Attempt(placed, script, port, token)
        budget = self.plan.connect_budget or SDK_WAIT
        while time.monotonic() - t0 < budget:
            if run.started is None and (started := find(self.client, port, since)) is not None:
                run.started = started
                cleanup.register(self.plan.run_id, started.container.name)
                self.resources.stack.callback(cleanup.remove_container, started.container)
                self.app.phase(f"DockerWorkspace started {started.container.name}, published on "
                               f"{', '.join(started.bindings)}")
            if script.event("ready") is not None:
                return Decision(Verdict.PASS, None, f"DockerWorkspace reached {placed.url}"), \
                    time.monotonic() - t0, run
            if script.done.is_set() or script.event("error") is not None:
                return self.ended(run), time.monotonic() - t0, None
            if run.started is not None and (d := self.look(caller, run)) is not None:
                return d, time.monotonic() - t0, None
            time.sleep(LOOK)
        return Decision(Verdict.FAIL, Cause.CONNECT_TIMEOUT,
                        f"DockerWorkspace was still waiting for {placed.url}{HEALTH} after {budget:.0f} s, and "
                        "the harness saw nothing it could name" + (f". Its output: {script.said()}" if script.output
                                                                   else ""), Direction.CALLER), budget, None

    def look(self, caller: Caller, run: Attempt) -> Decision | None:
        """Once the agent-server answers on its own port: can the caller reach the address the
        SDK polls? None while it boots, or when the caller's probe gets through."""
        assert run.started is not None
        c = run.started.container
        try:
            c.reload()
        except docker.errors.NotFound:
            return None  # stopped and gone (--rm): the SDK's error says why
        if c.status not in ("running", "created"):
            return None  # exited: DockerWorkspace notices it (`Container stopped unexpectedly`) and says so
        inside = probe_from(c, "the agent-server container (its own port, inside)", "127.0.0.1", 8000, HEALTH)
        d = self.reach(caller, run, inside)
        if inside.tcp == "open" and (inside.http or "").startswith("HTTP/"):
            return d
        # While it boots only what no boot changes is decided: the caller's own loopback, a name
        # it cannot resolve. Anything else waits for the agent-server to answer inside.
        return d if d is not None and d.cause in FINAL else None

    def reach(self, caller: Caller, run: Attempt, inside: NetProbe) -> Decision | None:
        assert run.started is not None
        seen, via = probe_caller(run.placed, HEALTH)
        mine = probe_here("the harness (this machine)", "127.0.0.1", run.port, HEALTH)
        d = caller_decision(caller, run.placed, seen, via, mine, run.started.bindings,
                            f"the agent-server DockerWorkspace started ({run.started.container.name})")
        if d is None:
            return None
        return replace(d, why=f"{d.why} | {inside.line()}; DockerWorkspace would wait {SDK_WAIT} s, then raise "
                              "'Container failed to become healthy in time'")

    def ended(self, run: Attempt) -> Decision:
        """The person's code stopped before it connected: in the SDK's own words."""
        said = run.script.event("error") or {}
        message = str(said.get("message") or "") or run.script.said() or "no output"
        if refused_ulimit(message):
            self.clamp = self.open_files()
        return sdk_decision(str(said.get("type", "nothing")), message, run.started is not None, self.clamp)

    # -- the caller's container -----------------------------------------------------------------

    def place(self, caller: Caller, port: int, clamp: int | None = None) -> Placed:
        """The caller's container on its network, with the daemon's socket (DockerWorkspace runs
        the docker CLI), as root (the socket's owner group is this machine's); with `clamp`,
        its docker run asks the daemon's own open-files limit (images/workspace.py)."""
        self.started += 1
        options = [("--network", caller.network), *(("--add-host", h) for h in caller.extra_hosts),
                   *(("-e", f"{k}={v}") for k, v in caller.env.items()),
                   *((("-e", f"{CLAMP}={clamp}"),) if clamp is not None else ()),
                   ("-v", f"{endpoint.app_socket()}:/var/run/docker.sock"), ("-u", "0")]
        name = f"{self.resources.name}-caller{self.started if self.started > 1 else ''}"
        box = app_container(self.image, [*options, ("--name", name)], [],
                            {**self.resources.labels, cleanup.ROLE_LABEL: "caller"})
        container = self.resources.stack.enter_context(box).get_wrapped_container()
        container.reload()
        return Placed(container, caller.network, caller.url_for(port=port, app="", app_port=8000))

    def open_files(self) -> int | None:
        """The hard open-files limit the daemon gives a container (its own)."""
        try:
            out = self.client.containers.run(self.image, ["sh", "-c", "ulimit -Hn"], entrypoint=[], remove=True,
                                             labels={**self.resources.labels, cleanup.ROLE_LABEL: "probe"})
            return int(out.decode().strip())
        except (docker.errors.DockerException, ValueError):
            return None

    def person_line(self, caller: Caller) -> str:
        return fixes.workspace_run(caller, self.server, self.plan.secrets)

    # -- its command, and its fixes -------------------------------------------------------------

    def command_task(self, run: Attempt) -> TaskResult:
        """The caller's `execute_command` (a file written in /workspace), judged by the file in
        the agent-server's container, read before the script lets the workspace go."""
        t0 = time.monotonic()
        deadline = t0 + 90
        while run.script.event("command") is None and not run.script.done.is_set() and time.monotonic() < deadline:
            time.sleep(LOOK)
        said = run.script.event("command")
        written = read_file(run.started.container, CHECK_FILE) if run.started else None
        run.placed.container.exec_run(["touch", CHECKED])
        run.script.done.wait(30)
        seconds = round(time.monotonic() - t0, 1)
        if said is None:
            why = run.script.event("error") or {}
            return TaskResult(name=TASK, verdict=Verdict.FAIL, seconds=seconds,
                              detail=f"execute_command never returned: {why.get('message') or run.script.said()}"[:400])
        effect = (written or "").strip() == run.token
        return TaskResult(name=TASK, verdict=Verdict.PASS if effect else Verdict.FAIL, seconds=seconds,
                          detail=f"execute_command exited {said['exit_code']}; {CHECK_FILE} in the "
                                 f"agent-server's container: {'holds the token written' if effect else repr(written)}",
                          evidence=[f"stdout: {str(said.get('stdout', '')).strip()[:200]}",
                                    f"the agent-server's log: {tail(run.started.container, 5)[-300:]}"
                                    if run.started else "the agent-server container was not seen"])

    def prove(self, fix: fixes.Fix) -> RemedyTry:
        """One fix, proven by the caller's code run again as the fix changes it."""
        t0 = time.monotonic()
        line = self.person_line(fix.caller)
        tried = RemedyTry(name=fix.name, why=fix.why, verdict=Verdict.FAIL, direction=Direction.CALLER, asks=fix.asks,
                          docker_run=line,
                          network_mode=fix.caller.network if fix.caller.network != self.caller.network else None,
                          extra_hosts=dict(h.split(":", 1) for h in fix.caller.extra_hosts
                                           if h not in self.caller.extra_hosts))
        decision, _, run = self.attempt(fix.caller)
        if run is not None:
            task = self.command_task(run)
            if task.verdict != Verdict.PASS:
                decision = Decision(Verdict.FAIL, Cause.API_ERROR, f"connected, then: {task.detail}", Direction.CALLER)
        tried.verdict, tried.seconds = decision.verdict, round(time.monotonic() - t0, 1)
        if decision.verdict != Verdict.PASS:
            tried.cause, tried.evidence = decision.cause, decision.why[:400]
        else:
            tried.fix = fixes.diff(self.result.caller_run or "", line)
        self.app.phase(f"fix {fix.name}: {tried.verdict}")
        return tried


@dataclass
class Attempt:
    placed: Placed
    script: Script
    port: int
    token: str
    started: Started | None = None
