"""A scoped stand-in for a host firewall (ufw's default deny on INPUT), for tests and the
diagnosis benchmark: drop TCP from the default bridge to the host on a port range.

Traffic from a container on docker0 to the host's own address is not DNAT'd by Docker
(its rule carries `! -i docker0`), so it meets the INPUT chain, where ufw and firewalld
drop it. The rule is inserted for the duration of a `with` block and always removed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

V0_RUNTIME_PORTS = "30000:39999"  # DockerRuntime's execution-server range (OpenHands' docker_runtime.py L45-54)


@contextmanager
def drop_bridge_to_host(ports: str = V0_RUNTIME_PORTS, bridge: str = "docker0") -> Iterator[list[str]]:
    rule = ["INPUT", "-i", bridge, "-p", "tcp", "--dport", ports, "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    try:
        yield rule
    finally:
        subprocess.run(["iptables", "-D", *rule], capture_output=True)
