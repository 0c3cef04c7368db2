"""The agent-server's Docker conversation runtime (`OH_CONVERSATION_RUNTIME=docker`, agent-server
1.49.1 on: docker_runtime/registry.py; docs/runtimes.md), watched from outside while the app
is still inside its create call: the app answers `POST /api/conversations` only once the
conversation's own container is healthy, or after `conversation_container_startup_timeout`
(120 s) has run out.

That container is started with the `docker` CLI as `agent-server-conversation-<uuid>`,
published on the daemon host's loopback (`-p 127.0.0.1::8000`), and the outer server reaches
it at `http://127.0.0.1:<port>` from its own network namespace. So the harness finds the
container as soon as the daemon has it, reads its published port as the outer server does
(`docker port`), and probes that address from the app's namespace and the container's own
port from inside it: an outer server in a container off the host network dials its own
loopback, and the cell says so in seconds.

The container carries no label of the harness's (the outer server names and labels it), so it
is named in the run registry as soon as it is seen, and removed with the cell. It bind-mounts
the outer server's folders by their paths in the outer server's filesystem: where the outer
server runs in a container, the daemon creates those paths on the host; the cell removes what
did not exist before it (`HostPaths`). Both facts make these cells one at a time per machine
(a file lock), so a container and a host path are never taken for another cell's.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container
from filelock import FileLock

from harness import endpoint
from harness.cells.diagnosis import Decision
from harness.host import cleanup
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from
from harness.model import Cause, Direction, Verdict, strip_ansi
from harness.paths import cache_root

PREFIX = "agent-server-conversation-"  # docker_runtime/registry.py _build_container's --name
SETTING = "OH_CONVERSATION_RUNTIME"  # agent_server/config.py conversation_runtime ("local" | "docker")
HEALTH = "/health"  # what the outer server polls (registry.py _wait_until_ready)
LOOK = 0.5  # a container started with --rm may live about a second
MISSES = 3


def docker_runtime(env: dict[str, str]) -> bool:
    """Whether the app's agent-server runs each conversation in a container of its own."""
    return env.get(SETTING, "").strip().lower() == "docker"


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """One such cell per machine: the outer servers' containers and host paths are told
    apart by time alone (they carry nothing of the cell's)."""
    (cache_root() / "locks").mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root() / "locks" / "conversation-runtime.lock")):
        yield


@dataclass
class HostPaths:
    """Paths the daemon may create on this machine for the outer server's bind mounts:
    those that did not exist before the cell are removed after it (a local daemon only)."""

    candidates: tuple[str, ...]
    absent: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not endpoint.remote():
            self.absent = [Path(p) for p in self.candidates if not os.path.lexists(p)]

    def created(self) -> list[str]:
        return [str(p) for p in self.absent if os.path.lexists(p)]

    def remove(self) -> None:
        for p in self.absent:
            shutil.rmtree(p, ignore_errors=True)


def roots(paths: list[str]) -> tuple[str, ...]:
    """For each path, its topmost ancestor this machine lacks: what the daemon would create."""
    out = []
    for path in paths:
        p = Path(path)
        missing = None
        for q in [p, *p.parents]:
            if os.path.lexists(q):
                break
            missing = q
        if missing is not None and str(missing) not in out:
            out.append(str(missing))
    return tuple(out)


@dataclass
class Seen:
    container: Container
    host_port: int | None
    host_ip: str | None
    misses: int = 0  # looks in a row where the app's path to it did not answer
    said: str = ""  # its last log lines while it ran (it is started with --rm: gone once stopped)
    mounts: tuple[str, ...] = ()  # its bind mounts as the daemon made them, SOURCE:DESTINATION
    user: str = ""  # the user it runs as (--user UID:GID, the outer server's own)

    def follow(self) -> None:
        """Its log, read as it is written, in the background: a container started with --rm
        that fails at once is gone before a look could read it (measured: a PermissionError
        said and removed within the second between two looks)."""
        def read() -> None:
            with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
                for chunk in self.container.logs(stream=True, follow=True):
                    self.said = (self.said + strip_ansi(chunk.decode(errors="replace")))[-20000:]

        threading.Thread(target=read, daemon=True, name="oh-matrix-conversation-log").start()

    def last_words(self) -> str:
        lines = [ln.strip() for ln in self.said.splitlines() if ln.strip()]
        wanted = [ln for ln in lines if any(w in ln for w in ("Error", "error", "denied", "Traceback"))]
        return " | ".join((wanted or lines)[-3:])[-600:]


def find(client: docker.DockerClient, since: float) -> Seen | None:
    """The conversation container the daemon has, created since `since` (epoch seconds)."""
    # ignore_removed: it runs with --rm, and the agent-server stops it as soon as it gives up
    for c in client.containers.list(all=True, filters={"name": PREFIX}, ignore_removed=True):
        created = c.attrs.get("Created", "")
        if created_at(created) < since - 2:
            continue
        binds = (c.attrs.get("NetworkSettings") or {}).get("Ports", {}).get("8000/tcp") or []
        first = binds[0] if binds else {}
        port = int(first["HostPort"]) if first.get("HostPort") else None
        mounts = tuple(f"{m.get('Source')}:{m.get('Destination')}" for m in c.attrs.get("Mounts") or []
                       if m.get("Type") == "bind")
        return Seen(c, port, first.get("HostIp"), mounts=mounts, user=str(c.attrs["Config"].get("User") or ""))
    return None


def created_at(created: str) -> float:
    """The daemon's `Created` time as epoch seconds (0 when it cannot be read)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


def watch(client: docker.DockerClient, app: Container, pending: concurrent.futures.Future[str], since: float,
          budget: float, run_id: str, phase: Callable[[str], None]) -> tuple[Decision | None, Seen | None, float]:
    """Looks every LOOK s while the app's create call is pending: (a decision, or None when
    the call returned first; the conversation container seen; seconds)."""
    t0, seen, registered = time.monotonic(), None, False
    while time.monotonic() - t0 < budget and not pending.done():
        if seen is None:
            seen = find(client, since)
        if seen is not None:
            if not registered:
                cleanup.register(run_id, seen.container.name)
                seen.follow()
                registered = True
                phase(f"its conversation container {seen.container.name} is up, published on "
                      f"{seen.host_ip}:{seen.host_port}")
            if (d := look(app, seen)) is not None:
                return d, seen, time.monotonic() - t0
        time.sleep(LOOK)
    return None, seen, time.monotonic() - t0


def look(app: Container, seen: Seen) -> Decision | None:
    try:
        seen.container.reload()
    except docker.errors.NotFound:  # stopped and removed (--rm): the app's pending create call says why
        return None
    if seen.container.status not in ("running", "created"):
        code = seen.container.attrs["State"].get("ExitCode")
        return Decision(Verdict.FAIL, Cause.RUNTIME_EXITED,
                        f"the conversation container {seen.container.name} {seen.container.status} with exit code "
                        f"{code} before the app reached it", Direction.FORWARD)
    if seen.host_port is None:
        return None
    inside = probe_from(seen.container, "the conversation container (its own port, inside)", "127.0.0.1", 8000, HEALTH)
    if not _answers(inside):
        return None  # still booting: nothing to judge yet
    dialled = probe_from(app, "the app (where its agent-server runs)", "127.0.0.1", seen.host_port, HEALTH)
    if _answers(dialled):
        seen.misses = 0
        return None  # the outer server reaches it: its create call returns soon
    app.reload()
    if app.attrs["HostConfig"].get("NetworkMode") != "host":
        return own_loopback(app, seen, dialled, inside)
    # On the host network 127.0.0.1 is the host's, where the port is published: a miss there
    # is the path to the container, judged on a streak, not a blip.
    seen.misses += 1
    if seen.misses < MISSES:
        return None
    address = next((n.get("IPAddress") for n in (seen.container.attrs["NetworkSettings"].get("Networks") or {})
                    .values() if n.get("IPAddress")), "")
    at = probe_from(seen.container, "the conversation container (its own address, inside)", address, 8000, HEALTH)
    return Decision(Verdict.FAIL, Cause.CONNECTION_REFUSED,
                    f"the app's agent-server, on the host network, reaches its conversation container "
                    f"{seen.container.name} at http://127.0.0.1:{seen.host_port}, where the daemon publishes it "
                    f"({seen.host_ip}:{seen.host_port}->8000), and gets no answer there {MISSES} looks in a row while "
                    f"the container answers on its own port inside. Probes: {dialled.line()} | {inside.line()} | "
                    f"{at.line()}", Direction.FORWARD)


def own_loopback(app: Container, seen: Seen, dialled: NetProbe, inside: NetProbe) -> Decision:
    return Decision(
        Verdict.FAIL, Cause.OWN_LOOPBACK,
        f"the app's agent-server started its conversation in {seen.container.name}, which the daemon published on "
        f"{seen.host_ip}:{seen.host_port} (`-p 127.0.0.1::8000`, the host's loopback), and reaches it at "
        f"http://127.0.0.1:{seen.host_port}, as docker_runtime/registry.py does: inside the app's container, off the "
        f"host network, that is the container's own loopback, where nothing listens; it would wait its 120 s "
        f"(conversation_container_startup_timeout) and answer 502. Probes: {dialled.line()} | {inside.line()}",
        Direction.FORWARD)


def own_paths(seen: Seen, created: list[str]) -> Decision | None:
    """The conversation container could not use its bind mounts because their sources were the
    outer server's own paths, which the daemon made on this machine (`created`, root-owned);
    None unless its last words are a permission error and such paths were made (pure)."""
    said = seen.last_words()
    if not created or ("PermissionError" not in said and "Permission denied" not in said):
        return None
    owners = []
    for path in created:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            owners.append(f"{path} (uid {st.st_uid}, mode {st.st_mode & 0o777:o})")
    mounts = ", ".join(seen.mounts) or "its conversation, persistence and workspace folders"
    return Decision(
        Verdict.FAIL, Cause.OWN_PATHS,
        f"the app's agent-server, in its container, started {seen.container.name} with bind mounts whose sources are "
        f"paths of its own container ({mounts}); the daemon resolves those on "
        f"this machine, where they did not exist, and made them there: {', '.join(owners or created)}. The "
        f"conversation container runs as {seen.user or 'the outer server’s user'} and cannot write them: "
        f"{said[-300:]}", Direction.FORWARD)


def _answers(p: NetProbe) -> bool:
    return p.tcp == "open" and (p.http or "").startswith("HTTP/")
