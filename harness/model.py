"""The results model: what a run found, as typed classes. `results.json` is written from
these classes and read back into them; reports, history, merge and the tests use them, and
the JSON Schema in docs/results.schema.json is generated from them (docs/results.md).

Imports neither docker nor httpx: it is data.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import InputError

SCHEMA: Final = "oh-matrix/1"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colour codes in OpenHands' logs


def strip_ansi(text: str | None) -> str:
    return _ANSI.sub("", text or "")


def first_line(text: str | None, limit: int = 200) -> str:
    """The first non-blank line, colour codes off, cut to `limit` characters."""
    line = next((ln.strip() for ln in strip_ansi(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def oh_matrix_label(version: str | None, commit: str | None) -> str:
    """The oh-matrix that made a run, in one phrase: its version, and the commit it ran from
    when the version does not name that commit already (an editable install's version is the
    commit it was installed at; a tree with changes is `-dirty`):
    `0.1.dev245+g57800d444`, `0.1.dev245+g57800d444 (commit 9a8b7c6-dirty)`, `0.1.0 (commit 1a2b3c4)`."""
    if not version:
        return f"unknown (commit {commit})" if commit else "unknown"
    named = re.search(r"\+g([0-9a-f]+)", version)
    same = bool(named and commit and (named.group(1).startswith(commit) or commit.startswith(named.group(1))))
    return version if not commit or same else f"{version} (commit {commit})"


class Verdict(StrEnum):
    """A cell's connect verdict, or a task's (docs/words.md)."""

    PASS = "pass"
    FAIL = "fail"  # OpenHands ran and the thing did not work
    ERROR = "error"  # the harness could not set it up
    SKIP = "skip"  # not applicable, with the reason


class Cause(StrEnum):
    """Why a cell or a task did not pass: a fixed vocabulary, so runs compare (docs/words.md)."""

    DNS_UNRESOLVED = "dns-unresolved"
    CONNECTION_REFUSED = "connection-refused"
    CONNECT_TIMEOUT = "connect-timeout"
    # Something on the way answered the connect with a rejection: an ICMP unreachable (a
    # firewall's REJECT), or a refusal a firewall rule on the path sends (a plain REJECT's
    # ICMP port unreachable, a TCP reset), the target listening or not.
    CONNECTION_REJECTED = "connection-rejected"
    PROXY = "proxy"
    RUNTIME_EXITED = "runtime-exited"
    RUNTIME_MISSING = "runtime-missing"
    APP_EXITED = "app-exited"
    # Agent Canvas's agent-server process died before it answered, while its launcher lived
    # (the native install: the launcher's own `[agent-server] Exited with code N`).
    AGENT_SERVER_EXITED = "agent-server-exited"
    IMAGE_UNAVAILABLE = "image-unavailable"
    API_ERROR = "api-error"
    # The release's own startup grace for its runtime ran out while the path to the runtime
    # was open: the runtime was too slow, not unreachable (boot time against the grace, and
    # the host's load, in the evidence).
    STARTUP_GRACE = "startup-grace"
    # The agent's LLM could not be used: its endpoint does not answer from the container that
    # calls it, it refuses the key, or it does not know the model.
    LLM_UNREACHABLE = "llm-unreachable"
    LLM_AUTH = "llm-auth"
    LLM_MODEL = "llm-model"
    # The app (or headless process) could not reach a Docker daemon to start its runtime with:
    # given no socket and no DOCKER_HOST, or one it cannot use; its own log line says so.
    DOCKER_UNREACHABLE = "docker-unreachable"
    # The app listens, but on a container port the deployment does not publish: a mapping
    # carried over from another release or product (the app server's 3000, Agent Canvas's 8000).
    APP_NOT_PUBLISHED = "app-not-published"
    # A process in a container dialled localhost/127.0.0.1 for something that runs elsewhere:
    # its own loopback, where nothing of OpenHands listens (a caller container given
    # http://localhost:PORT, as the host's browser would be).
    OWN_LOOPBACK = "own-loopback"
    # A process in a container named paths of its own filesystem as the sources of another
    # container's bind mounts: the daemon resolves them on its host, creates them there empty
    # and root-owned, and the other container cannot use them (the agent-server's Docker
    # conversation runtime, run inside the Canvas container).
    OWN_PATHS = "own-paths"
    # The app listens on its container's loopback only: the daemon's published port, and every
    # other container, reach nothing (the agent-server from 1.37.1 with no session key).
    LOOPBACK_BOUND = "loopback-bound"
    BUDGET_EXCEEDED = "budget-exceeded"
    # The daemon refused the harness's own set-up for a reason that is none of the above:
    # kept apart so an infrastructure error is never reported as an OpenHands failure.
    HARNESS_ERROR = "harness-error"
    # The Docker daemon went away while the cell ran (stopped, restarted, its socket gone): an
    # error of the machine's, never OpenHands' and never the harness's own bug.
    DAEMON_LOST = "daemon-lost"


class Direction(StrEnum):
    """Which way the network broke (V1 connects both ways)."""

    FORWARD = "app->runtime"
    CALLBACK = "sandbox->app"
    CALLER = "caller->app"  # whoever drives OpenHands from outside (harness/cells/caller.py)


class Source(StrEnum):
    """Who said a piece of evidence."""

    HARNESS = "harness"  # the decision's own sentence
    PROBE = "probe"  # a DNS/TCP/HTTP probe from inside a container's namespace
    API = "api"  # the app's API
    APP = "app"  # the app container's configuration
    APP_LOG = "app-log"
    RUNTIME = "runtime"  # the daemon's account of the runtime container
    RUNTIME_LOG = "runtime-log"
    DAEMON = "daemon"  # the daemon's event stream for the runtime
    HOST = "host"  # this machine's load while the cell booted


class _Model(BaseModel):
    # Older runs may carry keys this version dropped; they are ignored, never an error.
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class Evidence(_Model):
    source: Source
    text: str


class Connect(_Model):
    """Did the app reach its runtime: the verdict, its cause and what was observed."""

    verdict: Verdict
    cause: Cause | None = None
    seconds: float | None = None  # conversation created -> verdict
    runtime_url: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    reason: str | None = None  # for a skip: why not applicable
    direction: Direction | None = None  # when the network broke
    # The cell is run once more before its verdict is written: "again" for a reason of the
    # moment (a host port taken), "alone" when one of OpenHands' own clocks ran out and the
    # machine's load may be why (see diagnosis.Decision and runner.run_cell).
    rerun: Literal["again", "alone"] | None = None

    @model_validator(mode="after")
    def _cause_for_failures(self) -> Connect:
        if self.verdict in (Verdict.FAIL, Verdict.ERROR) and self.cause is None:
            raise ValueError(f"a {self.verdict} needs a cause")
        return self

    def headline(self) -> str | None:
        """The first non-empty line of evidence, as `source: line`."""
        for e in self.evidence:
            if line := first_line(e.text):
                return f"{e.source}: {line}"
        return None

    def explain(self) -> str:
        """The verdict and every piece of evidence, whole (an assertion message, a log line)."""
        head = f"{self.verdict} {self.cause or ''} after {self.seconds} s".replace("  ", " ")
        return "\n".join([head] + [f"[{e.source}] {e.text}" for e in self.evidence])


class TaskResult(_Model):
    """One task on a connected cell, judged by its effect in the runtime (or, for a task
    that asks a question, by what the agent answered)."""

    name: str
    verdict: Verdict
    # Where the task comes from: `builtin` (harness/tasks/__init__.py), `upstream` (OpenHands' own
    # integration tests, harness/tasks/catalogs/upstream.toml) or `file:PATH` (a task file).
    catalog: str = "builtin"
    source: str | None = None  # provenance: repo@commit:path, when the task file gives one
    cause: Cause | None = None  # when the task could not be judged by its effect (the LLM failed)
    seconds: float | None = None
    detail: str | None = None
    llm_calls: int | None = None  # scripted LLM only: requests it answered for this task
    actions: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    # A pass whose effect is there although the release misbehaved on the way (the agent
    # never saw a command's output, which the events prove: `evidence`), so the verdict
    # stays the effect's, the same whatever the machine's load, and the misstep is said.
    finding: str | None = None


class RemedyTry(_Model):
    """A known fix, tried by a real rerun of the failed cell: what it changed and what happened."""

    name: str
    env: dict[str, str] = Field(default_factory=dict)
    mode: str | None = None  # the rerun's mode when the remedy moves the cell
    why: str | None = None
    verdict: Verdict
    cause: Cause | None = None
    direction: Direction | None = None
    seconds: float | None = None
    runtime_url: str | None = None
    # The rerun's own decision when it did not pass (its first evidence line): a fix that
    # failed says why, as a cell does
    evidence: str | None = None
    docker_run: str | None = None
    host_change: str | None = None  # what the remedy changed on this machine for the rerun, and undid
    asks: int = 0  # of the host: 0 settings, 1 a move to another mode, 2 a change to the host itself
    # On a user's deployment, the fix as a change to their file: a unified diff of the compose
    # file, or their docker run line with the flags added (harness/deployments/fixes.py)
    fix: str | None = None
    # A deployment's own container changed besides its env: hosts it gains (`extra_hosts`,
    # `--add-host`), and its network (`network_mode: host`) instead of a move to a built-in mode
    extra_hosts: dict[str, str] = Field(default_factory=dict)
    network_mode: str | None = None
    also_publish: str | None = None  # an address the app's port is published on too
    republish: int | None = None  # the container port the deployment's published app port goes to instead
    volumes: list[str] = Field(default_factory=list)  # mounts the deployment's container gains (`-v`)

    def settings(self) -> str:
        """What it changed, for a line of text: `in mode host K=V ...`."""
        moved = [f"in mode {self.mode}"] if self.mode else []
        moved += [f"network_mode {self.network_mode}"] if self.network_mode else []
        moved += [f"extra host {k}:{v}" for k, v in self.extra_hosts.items()]
        moved += [f"the app's port published on {self.also_publish} too"] if self.also_publish else []
        moved += [f"volume {v}" for v in self.volumes]
        return " ".join(moved + [f"{k}={v}" for k, v in self.env.items()])


class Boot(_Model):
    """How the cell's boot went against OpenHands' own clocks, and what else the machine did
    meanwhile: a verdict must be a property of the cell, not of the host's load."""

    runtime_seconds: float | None = None  # runtime container started -> it answered on its own port
    grace: float | None = None  # the release's own startup grace for its runtime, when it has one
    cpu_cores: float | None = None  # the cell's app and runtime, averaged over the boot
    host_busy_cores: float | None = None  # the whole machine over the same time
    other_cores: float | None = None  # host_busy_cores minus the cell's own: everything else
    steal_percent: float | None = None  # CPU time the hypervisor took
    load: list[float] = Field(default_factory=list)  # 1/5/15-minute load averages at the verdict
    slot_wait: float | None = None  # seconds spent waiting for an admission slot
    slots: int | None = None  # how many boots this machine admits at once
    alone: bool = False  # booted with the machine to itself (every slot held)
    remote: bool = False  # on a remote daemon: its host's load is not this machine's, so not read

    def summary(self) -> str:
        """The machine while the cell booted, in one line."""
        parts = ["the daemon host's load not read: remote daemon"] if self.remote else []
        if self.load:
            parts.append("load " + "/".join(f"{x:.1f}" for x in self.load))
        if self.host_busy_cores is not None:
            parts.append(f"{self.host_busy_cores:.1f} cores busy, {self.cpu_cores:.1f} of them the cell's, "
                         f"{self.other_cores:.1f} other processes")
        if self.steal_percent:
            parts.append(f"{self.steal_percent:.0f}% stolen")
        if self.runtime_seconds is not None:
            grace = f" (grace {self.grace:.0f} s)" if self.grace else ""
            parts.append(f"runtime answered after {self.runtime_seconds:.0f} s{grace}")
        return ", ".join(parts) or "not measured"


class Expected(_Model):
    """What the matrix expects of a cell on this host (its `[[expect]]` entries): a pass
    unless an entry says the cell fails, with why, as pytest's xfail marks a test. A cell
    that comes out otherwise surprised; a pass of a cell expected to fail surprises only
    when the entry is strict."""

    verdict: Verdict = Verdict.PASS
    cause: Cause | None = None  # None: any cause
    reason: str | None = None
    strict: bool = False

    def text(self) -> str:
        return " ".join(str(w) for w in (self.verdict, self.cause) if w)

    def surprise(self, cell: CellResult) -> str | None:
        """How the cell differs from this expectation, in words; None when it does not (a
        skip never does: it says why it did not apply)."""
        c = cell.connect
        if c.verdict == Verdict.SKIP:
            return None
        if self.verdict == Verdict.PASS:
            return None if cell.passed else f"expected to pass, got {cell.outcome}"
        if c.verdict == Verdict.PASS:
            return f"passed, where the matrix expects {self.text()} (strict)" if self.strict else None
        if c.verdict != self.verdict or (self.cause is not None and c.cause != self.cause):
            return f"expected {self.text()}, got {cell.outcome}"
        return None


class CellResult(_Model):
    """One target x mode (x entry point): its connect verdict, tasks and remedies."""

    id: str
    tag: str
    mode: str
    api: str
    connect: Connect
    entrypoint: str = "api"  # api (the app server) | headless (V0's openhands.core.main) | cli | caller
    # A caller cell's caller (matrix `[callers.NAME]`): its name, and the caller as a `docker run`
    # line with the URL it was given (OPENHANDS_URL), the line its fixes change
    caller: str | None = None
    caller_run: str | None = None
    # The mode is the user's own deployment (harness/deployments): which file or line, in words
    deployment: str | None = None
    resolved_version: str | None = None
    backend: str | None = None
    app_image: str | None = None
    runtime_image: str | None = None
    runtime_container: str | None = None  # the runtime/sandbox OpenHands started for this cell
    app_seconds: float | None = None
    boot: Boot = Field(default_factory=Boot)
    docker_run: str | None = None
    app_env: dict[str, str] = Field(default_factory=dict)
    tasks: list[TaskResult] = Field(default_factory=list)
    remedies: list[RemedyTry] = Field(default_factory=list)
    socket_mounted_in: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # What the matrix expects of this cell on this host, and how the cell surprised: it
    # differs from that, or regressed since the last run on this host (None: it did not).
    # Both None in runs from before expectations.
    expected: Expected | None = None
    surprise: str | None = None
    # This cell on this host over the last runs, oldest first, this run last (history.jsonl):
    # what the report's charts draw. Empty in runs from before it.
    nights: list[Night] = Field(default_factory=list)
    # set on merged runs: the host this cell ran on
    host: str | None = None
    host_class: str | None = None
    base_tag: str | None = None

    @property
    def passed(self) -> bool:
        """Connected, and every task it ran passed (none run: vacuously; a task it could not
        run here is a skip, with its reason, and counts for nothing)."""
        return self.connect.verdict == Verdict.PASS and self.tasks_passed

    @property
    def failed_as_expected(self) -> bool:
        """It did not pass, as the matrix expects on its host: a known failure, no surprise."""
        e = self.expected
        return bool(e and e.verdict != Verdict.PASS and not self.surprise and self.connect.verdict == e.verdict)

    @property
    def tasks_passed(self) -> bool:
        return all(t.verdict in (Verdict.PASS, Verdict.SKIP) for t in self.tasks)

    @property
    def failed_tasks(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.verdict in (Verdict.FAIL, Verdict.ERROR)]

    @property
    def outcome(self) -> str:
        """What came out, in one comparable string: the verdict, its cause and direction, and
        the tasks that failed (`fail connect-timeout (sandbox->app)`, `pass, tasks failed: repo`).
        Hosts compare by it in a merged run."""
        c = self.connect
        text = " ".join(str(w) for w in (c.verdict, c.cause) if w)
        if c.direction:
            text += f" ({c.direction})"
        if failed := self.failed_tasks:
            text += ", tasks failed: " + ", ".join(t.name for t in failed)
        return text

    def why(self) -> str | None:
        """The first line of evidence behind the outcome: a failed task's own when the cell
        connected, else the connect's."""
        if self.connect.verdict == Verdict.PASS and (failed := self.failed_tasks):
            t = failed[0]
            detail = first_line(t.detail) or first_line(t.evidence[0] if t.evidence else "")
            return f"task {t.name}: {detail}" if detail else f"task {t.name} {t.verdict}"
        return self.connect.headline()

    def task(self, name: str) -> TaskResult | None:
        return next((t for t in self.tasks if t.name == name), None)


class ImageSet(_Model):
    """What a backend hands to the matrix: the images of one target, and where they came from."""

    tag: str
    resolved_version: str
    backend: str  # the backend that really produced the images: "official" or "pypi"
    api: str
    app_image: str
    runtime_image: str
    # Settings the app needs to find these images (a mirror's agent-server repository):
    # set on the app container and shown in its `docker run` line.
    app_env: dict[str, str] = Field(default_factory=dict)
    deps_hash: str = ""
    notes: list[str] = Field(default_factory=list)
    # Packages built from a git commit instead of the registry (harness/images/sources.py):
    # [{"package", "version", "repo", "commit"}]; empty for a release as PyPI has it.
    sources: list[dict[str, str]] = Field(default_factory=list)
    # Capabilities a task may need (harness/generations.py CAPABILITIES) that these images
    # lack, each explained by a note `lacks NAME: why`; a task that needs one is skipped.
    lacks: list[str] = Field(default_factory=list)
    # The `cli` entry point's CLI (harness/images/cli.py): the `openhands` release paired with
    # this target and why, its image, or why it could not be built.
    cli_version: str | None = None
    cli_pair: str | None = None
    cli_image: str | None = None
    cli_error: str | None = None
    # The native mode's install of this release (Generation.native_install, made once per
    # version): the paths its cell runs (package, node, node_version, uv, python), or why not.
    native: dict[str, str] = Field(default_factory=dict)
    native_error: str | None = None
    # The release's agent-server alone (`ghcr.io/openhands/agent-server:V-python`): what a
    # backend runs, the Docker runtimes and the SDK's DockerWorkspace start; None when the
    # release has none here.
    agent_server_image: str | None = None
    # A docker-workspace caller's image (harness/images/workspace.py: the agent-server image with
    # openhands-workspace and a docker CLI), or why it could not be made.
    workspace_image: str | None = None
    workspace_error: str | None = None
    # Seconds of each build step when this run built the images (pypi backend: collect,
    # sources, venv, images); empty when they were cached or pulled.
    build_seconds: dict[str, float] = Field(default_factory=dict)

    def lack_reason(self, capability: str) -> str | None:
        """Why these images lack `capability` (None: they have it)."""
        if capability not in self.lacks:
            return None
        why = next((n.partition(": ")[2] for n in self.notes if n.startswith(f"lacks {capability}: ")), "")
        return f"the {self.backend} backend's images of {self.resolved_version} lack it" + (f" ({why})" if why else "")


class ImageFailure(_Model):
    """A target whose images could not be pulled or built: its cells are `error`."""

    error: str
    resolved_version: str | None = None


class RootlessKitInfo(_Model):
    """A rootless daemon's RootlessKit as its API describes it (host/rootlesskit.py)."""

    version: str | None = None
    network_driver: str | None = None  # slirp4netns, vpnkit, pasta, lxc-user-nic
    port_driver: str | None = None  # builtin, slirp4netns
    child_ip: str | None = None  # the namespace's own address
    host_alias: str | None = None  # this machine as a container reaches it (the namespace's default gateway)
    host_loopback: bool | None = None  # the host alias reaches this machine's loopback (no --disable-host-loopback)


class Host(_Model):
    """What the daemon says about itself; a verdict belongs to its host."""

    server_version: str | None = None
    api_version: str | None = None
    os: str | None = None
    kernel: str | None = None
    rootless: bool | None = None
    rootlesskit: RootlessKitInfo | None = None  # a rootless daemon on this machine: its RootlessKit
    cgroup: str | None = None
    storage_driver: str | None = None
    bridge_gateway: str | None = None
    engine: str | None = None  # docker | podman: which engine answers the Docker API (None: older runs, Docker)
    proxies: dict[str, str] = Field(default_factory=dict)
    bridge: dict[str, str] = Field(default_factory=dict)  # the default bridge's options: enable_icc, name, ...
    userland_proxy: str | None = None  # on | off, from the daemon's nat rules; None: not readable here
    firewall: str | None = None  # where firewall rules live (iptables' backend, nftables' own tables); None: not read
    remote: bool | None = None  # the daemon is not on this machine's socket
    docker_host: str | None = None
    docker_context: str | None = None  # the docker context docker_host was taken from (none: DOCKER_HOST or default)
    hostname: str | None = None
    # OH_MATRIX_HOST: a name the user gives the host (the nightly: its runner label); when
    # set it, not the hostname, names the host in history and merged reports
    label: str | None = None
    # on the hosts of a merged run
    run_id: str | None = None
    host_class: str | None = None
    oh_matrix_version: str | None = None  # the oh-matrix that ran that host's run (Run.oh_matrix_version)
    oh_matrix_commit: str | None = None

    @property
    def name(self) -> str | None:
        """What the host is called: its label when the user gave one, else its hostname."""
        return self.label or self.hostname

    @property
    def platform(self) -> str | None:
        """`desktop` for Docker Desktop and OrbStack, whose containers get
        host.docker.internal from the daemon; `linux` for a Docker engine on Linux, whose
        containers do not; None when the daemon did not say (matrix.PLATFORMS)."""
        if not self.os or self.os == "?":
            return None
        return "desktop" if self.os.startswith(("Docker Desktop", "OrbStack")) else "linux"

    @property
    def daemon_kind(self) -> str:
        """` podman`, ` rootless`, ` remote`, some of them or nothing: a daemon of another kind
        on one machine is another host, whose every path differs (history, merge and bisect
        keep them apart)."""
        return "".join(f" {word}" for word, on in (("podman", self.engine == "podman"), ("rootless", self.rootless),
                                                   ("remote", self.remote)) if on)


class HostGroup(_Model):
    """Hosts of a merged run whose every cell came out the same (CellResult.outcome): a
    merged report shows the group once, by the cells of its first host."""

    name: str  # A, B, ...: the largest group first
    hosts: list[str]
    host_classes: list[str] = Field(default_factory=list)


class Side(_Model):
    """One answer to a cell on which hosts disagree: the hosts that gave it, and why."""

    outcome: str
    verdict: Verdict
    cause: Cause | None = None
    hosts: list[str]
    groups: list[str] = Field(default_factory=list)
    host_classes: list[str] = Field(default_factory=list)
    cell: str  # the merged cell shown for this side: the first host of its first group
    why: str | None = None  # that cell's first line of evidence (CellResult.why)


class Disagreement(_Model):
    """A cell of the matrix whose outcome differs between the hosts that ran it."""

    cell: str  # the matrix's cell id: 0.62-host-gateway
    sides: list[Side]  # most hosts first
    # Every host class stands on one side only: the split follows OS / Docker / rootless /
    # remote / nftables (merge.host_class).
    # False: hosts of one class disagree, so what differs is something the class does not
    # name (the daemon's configuration, a firewall, the network).
    by_host_class: bool = False
    # What may explain the split: host facts whose values on one side occur on no other
    # side, or pairs of facts that do so together: {"userland_proxy": ["on", "off"],
    # "bridge.enable_icc & userland_proxy": ["true & on, false & on", "false & off"]}, each
    # side's values in the sides' order (merge.distinguishing).
    host_facts: dict[str, list[str]] = Field(default_factory=dict)


class Alternative(_Model):
    cell: str
    resolved_version: str | None = None


class BestRemedy(_Model):
    cell: str
    name: str
    env: dict[str, str] = Field(default_factory=dict)
    docker_run_hint: str | None = None


class Recommendation(_Model):
    """What to deploy, decided from the cells (recommend.py); `cell` is None when nothing
    passed as is (then `best_remedy` may name a cell a remedy turned green)."""

    cell: str | None = None
    tag: str | None = None
    resolved_version: str | None = None
    mode: str | None = None
    docker_run: str | None = None
    why: str = ""
    older_alternatives: list[Alternative] = Field(default_factory=list)
    lost_by_older: str | None = None
    best_remedy: BestRemedy | None = None

    def text(self) -> str:
        if self.cell:
            return f"recommended: {self.cell} ({self.resolved_version})\n  {self.docker_run}"
        if self.best_remedy and self.docker_run:
            return f"recommended, with a remedy: {self.why}\n  {self.docker_run}"
        return f"recommended: nothing. {self.why}"


class UpgradeMode(_Model):
    """One mode across an upgrade: the connect verdict before and after, and tasks that changed."""

    mode: str
    before: str  # "pass", "fail dns-unresolved (sandbox->app)", "not run"
    after: str
    move: str  # "pass -> pass", "pass -> fail", "fail -> pass", "fail -> fail" (tasks included); a side
    # whose cell was left out of the run (--only, -k) is "not run"
    tasks_changed: list[str] = Field(default_factory=list)  # "create-file: pass -> fail"


class Upgrade(_Model):
    """The move from one release to another on this host (upgrade.py)."""

    before: str  # tags
    after: str
    before_version: str | None = None
    after_version: str | None = None
    modes: list[UpgradeMode] = Field(default_factory=list)
    mode_before: str | None = None  # the mode each release is recommended in
    mode_after: str | None = None
    command_before: str | None = None  # the recommended docker run of each release
    command_after: str | None = None
    settings_added: list[str] = Field(default_factory=list)  # `-e K=V`, `--network host`... that appear
    settings_removed: list[str] = Field(default_factory=list)  # ... and that go
    image_before: str | None = None
    image_after: str | None = None
    # The move crosses from one product to another (the app server to Agent Canvas): in words,
    # with what the new product no longer needs; None within one product.
    crosses: str | None = None


class HistoryCell(_Model):
    verdict: Verdict
    cause: Cause | None = None
    version: str | None = None
    seconds: float | None = None  # connect seconds (Connect.seconds); None in lines from before
    grace: float | None = None  # the release's own startup grace the cell ran with (Boot.grace)


class Night(_Model):
    """One run of a cell on its host, as history.jsonl keeps it: a point of the report's
    verdict-by-night and seconds-against-grace charts."""

    run_id: str
    finished_at: str
    verdict: Verdict
    cause: Cause | None = None
    seconds: float | None = None
    grace: float | None = None
    version: str | None = None


class Change(_Model):
    """A cell whose verdict moved since the last run on the same host."""

    cell: str
    before: HistoryCell
    now: HistoryCell
    since: str  # the run id it is compared with


class Changes(_Model):
    regressions: list[Change] = Field(default_factory=list)
    fixes: list[Change] = Field(default_factory=list)
    # history lines that could not be read ("history.jsonl:3: ..."): the comparison ran
    # without them, and `--gate regressions` fails rather than pass on a history it cannot read
    unreadable: list[str] = Field(default_factory=list)


class HistoryEntry(_Model):
    """One line of history.jsonl."""

    run_id: str
    finished_at: str
    host: str
    matrix: str | None = None
    cells: dict[str, HistoryCell] = Field(default_factory=dict)
    oh_matrix_version: str | None = None  # the oh-matrix that ran it (Run.oh_matrix_version); none in older lines
    oh_matrix_commit: str | None = None


class Run(_Model):
    """One run (or several merged): everything results.json holds."""

    schema_: Literal["oh-matrix/1"] = Field(SCHEMA, alias="schema")
    run_id: str
    started_at: str
    finished_at: str
    backend: str
    host: Host = Field(default_factory=Host)
    cells: list[CellResult] = Field(default_factory=list)
    recommendation: Recommendation = Field(default_factory=Recommendation)
    matrix: str | None = None
    app_env: dict[str, str] = Field(default_factory=dict)
    images: dict[str, ImageSet | ImageFailure] = Field(default_factory=dict)
    swept_at_start: str = ""
    boot_slots: int | None = None  # boots the machine admitted at once (admission.py)
    boot_slots_why: str = ""
    # The oh-matrix that made this file: its version (git's, through setuptools-scm: `0.1.0`,
    # `0.1.dev245+g57800d444`) and the commit it ran from where it ran from a checkout (`-dirty`
    # when the checkout had changes); a merged run's are the merge's. None in older results.
    oh_matrix_version: str | None = None
    oh_matrix_commit: str | None = None
    upgrade: Upgrade | None = None  # when asked for (--upgrade-from, run.upgrade_from)
    changes: Changes = Field(default_factory=Changes)
    trends: dict[str, str] = Field(default_factory=dict)
    # merged runs
    merged_from: list[str] = Field(default_factory=list)
    hosts: dict[str, Host] = Field(default_factory=dict)
    recommendation_per_host_class: dict[str, Recommendation] = Field(default_factory=dict)
    host_groups: list[HostGroup] = Field(default_factory=list)
    disagreements: list[Disagreement] = Field(default_factory=list)

    model_config = ConfigDict(extra="ignore", validate_assignment=True, populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    def cell(self, cell_id: str) -> CellResult | None:
        return next((c for c in self.cells if c.id == cell_id), None)


def read_run(directory: str | Path) -> Run:
    """A past run's results.json; a missing, broken or foreign file is an input error."""
    folder = Path(directory)
    if not folder.is_dir():
        why = "not a folder" if folder.exists() else "no such folder"
        raise InputError(f"{directory}: {why} (a run's --out folder)")
    path = folder / "results.json"
    if not path.exists():
        raise InputError(f"{directory}: not a run folder (no results.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:  # a ValueError too: said as what it is, not as bad JSON
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{path}: schema {got!r} is not {SCHEMA}")
    try:
        return Run.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: {where}: {first['msg']}") from None


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of results.json (docs/results.schema.json)."""
    schema = Run.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://oh-matrix.invalid/results.schema.json"
    schema["title"] = "oh-matrix results.json (schema oh-matrix/1)"
    return schema


if __name__ == "__main__":  # python -m harness.model > docs/results.schema.json
    print(json.dumps(json_schema(), indent=2))
