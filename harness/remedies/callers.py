"""The known fixes of a caller that does not reach OpenHands (a caller cell:
harness/cells/caller.py), as changes to the caller itself, never to the app: the URL it is
given, the network it runs on, the names its container knows, its proxy settings. Each is
proven by a caller of its own against the same app, and shown as the change to the caller's
`docker run` line (docs/remedies.md).
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, replace

from harness.matrix import WORKSPACE_URL, Caller
from harness.model import Cause
from harness.secrets import hinted

GATEWAY_ALIAS = "host.docker.internal:host-gateway"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
PLACEHOLDER = "CALLER_IMAGE"  # the caller's own image: the harness runs the calls, not the tool


# Every fix's name, for `--remedy NAME` (a caller cell tries only those named, when any are)
NAMES = ("caller-host-gateway", "caller-app-network", "caller-host-network", "caller-no-proxy", "daemon-open-files")


@dataclass(frozen=True)
class Fix:
    name: str
    why: str
    caller: Caller  # the caller as the fix changes it
    asks: int = 0  # of the host: 0 the caller's settings, 1 where it runs


_URL = re.compile(r"(https?://)(\[[^\]]*\]|[^/:]*)(:[^/]*)?(.*)", re.S)


def url_host(url: str) -> str:
    """The host a caller's URL names (placeholders such as {port} kept as written)."""
    m = _URL.match(url)
    return m.group(2) if m else ""


def _with_host(url: str, host: str, port: str | None = None) -> str:
    m = _URL.match(url)
    if m is None:
        return url
    return f"{m.group(1)}{host}{':' + port if port else m.group(3) or ''}{m.group(4)}"


def applicable(caller: Caller, cause: Cause | None, app_network: str) -> list[Fix]:
    """The fixes for `cause`, for this caller: the cheapest first."""
    host = url_host(caller.url)
    out: list[Fix] = []
    if cause in (Cause.OWN_LOOPBACK, Cause.DNS_UNRESOLVED, Cause.CONNECTION_REFUSED) and caller.network != "host":
        hosts = caller.extra_hosts if GATEWAY_ALIAS in caller.extra_hosts else (*caller.extra_hosts, GATEWAY_ALIAS)
        out.append(Fix("caller-host-gateway",
                       "call the host by the name Docker maps to its gateway (--add-host "
                       "host.docker.internal:host-gateway), where the app's port is published",
                       replace(caller, url=_with_host(caller.url, "host.docker.internal"), extra_hosts=hosts)))
        if app_network not in ("bridge", "host"):  # the app is on a network of its own: join it
            out.append(Fix("caller-app-network",
                           f"run the caller on the app's network ({app_network}) and call the app by its "
                           "container name, at its own port",
                           replace(caller, network="app", url=_with_host(caller.url, "{app}", "{app_port}")), asks=1))
        # DockerWorkspace's own 127.0.0.1 is this machine's there: its host= may stay unset
        url = caller.url if caller.workspace and host in LOOPBACK_HOSTS else _with_host(caller.url, "localhost")
        out.append(Fix("caller-host-network",
                       "run the caller on the host's network (--network host), where localhost is this machine",
                       replace(caller, network="host", url=url), asks=1))
    if cause == Cause.PROXY:
        names = [n for n in ("NO_PROXY", "no_proxy") if n in caller.env] or ["NO_PROXY", "no_proxy"]
        before = next((caller.env[n] for n in names if n in caller.env), "")
        wanted = ",".join(x for x in (before, host) if x)
        out.append(Fix("caller-no-proxy", f"keep the call to {host} off the caller's proxy (NO_PROXY)",
                       replace(caller, env={**caller.env, **{n: wanted for n in names}})))
    return out


def daemon_open_files(caller: Caller, limit: int) -> Fix:
    """A DockerWorkspace caller's daemon that refused its open-files ask, raised: proven by the
    code run again asking the daemon's own `limit` (harness/cells/workspace.py)."""
    return Fix("daemon-open-files",
               "raise the daemon's own open-files limit to at least 65536 (dockerd's LimitNOFILE, e.g. a systemd "
               "drop-in LimitNOFILE=1048576; in an LXC guest, the guest's nofile limit on its host): proven by the "
               f"caller's code run again with its ask lowered to this daemon's {limit}, the one thing that changes",
               caller, asks=2)


def docker_run(caller: Caller, url: str | None, secrets: frozenset[str] = frozenset(), *more: str) -> str:
    """The caller as a person runs it, one option a line, with the URL it is given as
    OPENHANDS_URL (if any) and `more` options: the line its fixes change. Secret values are
    left as placeholders."""
    def value(k: str, v: str) -> str:
        return f"${k}" if k in secrets or hinted(k) else v

    options = [f"--network {shlex.quote(caller.network)}",
               *(f"--add-host {shlex.quote(h)}" for h in caller.extra_hosts),
               *(f"-e {shlex.quote(f'{k}={value(k, v)}')}" for k, v in caller.env.items()),
               *([f"-e {shlex.quote('OPENHANDS_URL=' + url)}"] if url is not None else []), *more]
    return " \\\n  ".join(["docker run -d", *options, PLACEHOLDER])


def workspace_run(caller: Caller, server: str, secrets: frozenset[str] = frozenset()) -> str:
    """A docker-workspace caller as a person runs it: its container (with the daemon's socket,
    as DockerWorkspace needs), then the SDK call its code makes, with the host= it gives
    (none: the SDK's own http://127.0.0.1:PORT). The lines its fixes change."""
    line = docker_run(caller, None, secrets, "-v /var/run/docker.sock:/var/run/docker.sock")
    args = [f"server_image={server!r}"]
    if caller.url != WORKSPACE_URL:
        args += ["host_port=PORT", f"host={caller.url.format(port='PORT')!r}"]
    return f"{line}\nDockerWorkspace({', '.join(args)})"


def diff(before: str, after: str) -> str:
    """The change as a unified diff of the two lines, option by option."""
    lines = list(difflib.unified_diff(_options(before), _options(after), "caller (as given)", "caller (fixed)",
                                      lineterm="", n=9))
    return "\n".join(lines)


def _options(line: str) -> list[str]:
    return [re.sub(r"\s*\\$", "", part).strip() for part in line.splitlines()]
