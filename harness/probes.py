"""Probes run from inside a container's own network namespace, so they see what the app
(or the runtime) sees: its /etc/hosts, its routes, its proxy variables.

Each probe is a small Python program exec'd with the container's own interpreter (every
OpenHands image has one); it prints one JSON line. Classification of what the probes saw
into a cause lives in diagnosis.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import docker
from docker.errors import APIError, NotFound

from harness import cleanup

# Resolve, TCP connect (refused vs dropped vs reset, timed), then GET the health path.
# Runs with no proxy on purpose: it tests the network path itself.
_NET_PROBE = r"""
import json, socket, sys, time
host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
out = {"host": host, "port": port}
t = time.monotonic()
try:
    out["addresses"] = sorted({a[4][0] for a in socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)})
    out["dns"] = "ok"
except OSError as e:
    out["dns"] = "fail"; out["dns_error"] = str(e); print(json.dumps(out)); sys.exit(0)
t = time.monotonic()
s = socket.socket(); s.settimeout(timeout)
try:
    s.connect((out["addresses"][0], port)); out["tcp"] = "open"
except socket.timeout:
    out["tcp"] = "timeout"
except ConnectionRefusedError:
    out["tcp"] = "refused"
except OSError as e:
    out["tcp"] = "error"; out["tcp_error"] = str(e)
out["tcp_ms"] = round((time.monotonic() - t) * 1000)
if out["tcp"] == "open":
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = s.recv(300).decode(errors="replace")
        out["http"] = data.split("\r\n", 1)[0] if data else "closed without a response"
        out["http_body"] = data.split("\r\n\r\n", 1)[-1][:120] if data else ""
    except OSError as e:
        out["http"] = f"error: {e}"
s.close()
print(json.dumps(out))
"""


@dataclass
class NetProbe:
    """One look from a namespace at host:port."""

    where: str
    host: str
    port: int
    dns: str = "?"
    addresses: list[str] | None = None
    tcp: str | None = None  # open | refused | timeout | error
    tcp_ms: int | None = None
    http: str | None = None
    error: str | None = None

    def line(self) -> str:
        parts = [f"from {self.where}: {self.host}:{self.port}"]
        if self.dns != "ok":
            parts.append(f"DNS {self.dns}" + (f" ({self.error})" if self.error else ""))
            return " ".join(parts)
        parts.append(f"-> {','.join(self.addresses or [])}")
        if self.tcp:
            parts.append(f"TCP {self.tcp} in {self.tcp_ms} ms")
        if self.tcp == "error" and self.error:
            parts.append(f"({self.error})")
        if self.http:
            parts.append(f"HTTP '{self.http}'")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _in_namespace_of(container: docker.models.containers.Container, args: list[str]) -> tuple[int, bytes]:
    """Run the probe in a throw-away container that joins the target's network namespace,
    for images with no Python of their own: same /etc/hosts, routes and interfaces."""
    client = container.client
    bases = client.images.list(filters={"label": "oh-matrix.image=base"})
    if not bases:
        return 127, b"no python in the container and no oh-matrix base image to probe from"
    helper = client.containers.run(bases[0].id, ["python3", *args], detach=True,
                                   network_mode=f"container:{container.id}",
                                   labels={**container.labels, "oh-matrix.probe": container.name,
                                           cleanup.OWNER_LABEL: cleanup.owner(),
                                           cleanup.RUN_LABEL: container.labels.get(cleanup.RUN_LABEL, "probe")})
    try:
        code = int(helper.wait(timeout=60)["StatusCode"])
        return code, bytes(helper.logs())
    finally:
        helper.remove(force=True)


def probe_from(container: docker.models.containers.Container, where: str, host: str, port: int,
               path: str = "/alive", timeout: float = 2.0) -> NetProbe:
    result = NetProbe(where=where, host=host, port=port)
    args = ["-c", _NET_PROBE, host, str(port), path, str(timeout)]
    try:
        code, output = container.exec_run(["python", *args], demux=False)
        if code in (126, 127) or b"executable file not found" in (output or b""):
            code, output = _in_namespace_of(container, args)
    except (APIError, NotFound) as e:
        result.dns, result.error = "not run", f"exec failed: {str(e)[:160]}"
        return result
    text = (output or b"").decode(errors="replace").strip()
    try:
        data = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        result.dns, result.error = "not run", f"probe exit {code}: {text[-160:]}"
        return result
    result.dns = data.get("dns", "?")
    result.addresses = data.get("addresses")
    result.tcp = data.get("tcp")
    result.tcp_ms = data.get("tcp_ms")
    result.http = data.get("http")
    result.error = data.get("dns_error") or data.get("tcp_error")
    return result


def proxy_env(container: docker.models.containers.Container) -> dict[str, str]:
    """Proxy variables the app's HTTP client (httpx, trust_env=True) will honour."""
    env = container.attrs.get("Config", {}).get("Env") or []
    names = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
    out = {}
    for item in env:
        k, _, v = item.partition("=")
        if k.upper() in names and v:
            out[k] = v
    return out


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))):
            return True
    return False
