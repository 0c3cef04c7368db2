"""Probes run from inside a container's own network namespace, so they see what the app
(or the runtime) sees: its /etc/hosts, its routes, its proxy variables.

Each probe is a small Python program (netprobe.PROGRAM) exec'd with the container's own
interpreter (every OpenHands image has one); it prints one JSON line. Classification of
what the probes saw into a cause lives in diagnosis.py.
"""

from __future__ import annotations

import subprocess
import sys

import docker
from docker.errors import APIError, NotFound

from harness.host import cleanup
from harness.host.netprobe import PROGRAM, NetProbe


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
               path: str = "/alive", timeout: float = 2.0, via: tuple[str, int] | None = None) -> NetProbe:
    """A look from `container`'s namespace at host:port (through the proxy `via`, if given)."""
    args = ["-c", PROGRAM, host, str(port), path, str(timeout), *([via[0], str(via[1])] if via else [])]
    try:
        code, output = container.exec_run(["python", *args], demux=False)
        if code in (126, 127) or b"executable file not found" in (output or b""):
            code, output = _in_namespace_of(container, args)
    except (APIError, NotFound) as e:
        result = NetProbe(where=where, host=(via or (host, port))[0], port=(via or (host, port))[1])
        result.dns, result.error = "not run", f"exec failed: {str(e)[:160]}"
        return result
    name, number = via or (host, port)
    return NetProbe.parse(where, name, number, code, (output or b"").decode(errors="replace").strip())


def probe_here(where: str, host: str, port: int, path: str = "/", timeout: float = 2.0) -> NetProbe:
    """The same look from the harness's own namespace (this machine, where it reaches the
    apps): the probe program run by the harness's interpreter, so both ends of a path that
    works for one and not the other are told in one language."""
    try:
        out = subprocess.run([sys.executable, "-c", PROGRAM, host, str(port), path, str(timeout)],
                             capture_output=True, text=True, timeout=timeout + 10)
    except (OSError, subprocess.TimeoutExpired) as e:
        result = NetProbe(where=where, host=host, port=port)
        result.dns, result.error = "not run", str(e)[:160]
        return result
    return NetProbe.parse(where, host, port, out.returncode, out.stdout.strip())


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


def proxy_for(proxy: dict[str, str]) -> tuple[str, int] | None:
    """The proxy an HTTP client with these variables uses for http:// URLs (host, port)."""
    from urllib.parse import urlparse

    upper = {k.upper(): v for k, v in proxy.items()}
    url = upper.get("HTTP_PROXY") or upper.get("ALL_PROXY")
    if not url:
        return None
    u = urlparse(url if "://" in url else f"http://{url}")
    return (u.hostname or "", u.port or (443 if u.scheme == "https" else 80)) if u.hostname else None
