"""What a probe from inside a container's network namespace saw: a DNS lookup, a TCP
connect (refused vs dropped vs reset, timed), then an HTTP request. Pure data and the probe
program itself; probes.py runs it in a container, diagnosis.py judges what it saw.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

# Resolve, TCP connect (refused vs dropped vs reset, timed), then GET the health path.
# Runs with no proxy on purpose: it tests the network path itself. With a proxy host and port
# after the usual arguments, it connects to the proxy instead and asks it for the URL, as an
# HTTP client that honours HTTP_PROXY does.
PROGRAM = r"""
import json, socket, sys, time
host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
via = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else None
name, number = via or (host, port)
out = {"host": name, "port": number}
try:  # where the answer comes from: the container's own /etc/hosts, or DNS
    out["hosts"] = [ln.split("#")[0].strip() for ln in open("/etc/hosts") if name in ln.split("#")[0].split()[1:]]
except OSError:
    out["hosts"] = None
t = time.monotonic()
try:
    out["addresses"] = sorted({a[4][0] for a in socket.getaddrinfo(name, number, socket.AF_INET, socket.SOCK_STREAM)})
    out["dns"] = "ok"
except OSError as e:
    out["dns"] = "fail"; out["dns_error"] = str(e); print(json.dumps(out)); sys.exit(0)
t = time.monotonic()
s = socket.socket(); s.settimeout(timeout)
try:
    s.connect((out["addresses"][0], number)); out["tcp"] = "open"
except socket.timeout:
    out["tcp"] = "timeout"
except ConnectionRefusedError:
    out["tcp"] = "refused"
except OSError as e:  # an ICMP unreachable (a firewall's REJECT, no route) is an answer: said as one
    out["tcp"] = "unreachable" if e.errno in (92, 101, 113) else "error"; out["tcp_error"] = str(e)
out["tcp_ms"] = round((time.monotonic() - t) * 1000)
if out["tcp"] == "open":
    target = f"http://{host}:{port}{path}" if via else path
    try:
        s.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
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
    # open | refused | timeout | unreachable (an ICMP unreachable: EHOSTUNREACH, ENETUNREACH, and
    # ENOPROTOOPT for a protocol unreachable) | error
    tcp: str | None = None
    tcp_ms: int | None = None
    http: str | None = None
    error: str | None = None
    hosts: list[str] | None = None  # the name's lines in the container's /etc/hosts (None: unreadable)

    def resolver(self) -> str:
        """Where the name was looked up: the container's /etc/hosts, or DNS."""
        if self.hosts:
            return f"/etc/hosts: {self.hosts[0]}"
        return "not in /etc/hosts, asked DNS" if self.hosts is not None else "DNS"

    def line(self) -> str:
        parts = [f"from {self.where}: {self.host}:{self.port}"]
        if self.dns != "ok":
            parts.append(f"DNS {self.dns}" + (f" ({self.error})" if self.error else ""))
            if self.dns == "fail":
                parts.append(f"[{self.resolver()}]")
            return " ".join(parts)
        parts.append(f"-> {','.join(self.addresses or [])}")
        if self.tcp:
            parts.append(f"TCP {self.tcp} in {self.tcp_ms} ms")
        if self.tcp in ("error", "unreachable") and self.error:
            parts.append(f"({self.error})")
        if self.http:
            parts.append(f"HTTP '{self.http}'")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, where: str, host: str, port: int, code: int, text: str) -> NetProbe:
        """The probe program's last output line; anything else says why it did not run."""
        result = cls(where=where, host=host, port=port)
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
        result.hosts = data.get("hosts")
        return result


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))):
            return True
    return False
