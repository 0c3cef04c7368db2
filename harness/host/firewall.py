"""The host's firewall as it bears on a cell, as commands: the rules printed by iptables
(legacy or nf_tables, `iptables -S`, the nat `DOCKER` chain, the filter table) and by native
nftables (`nft list ruleset`), handed to `ruleset.py`, which reads and weighs them (what a
rule matches, what a reject sends back, which chain a connect meets, the FORWARD path of a
connect the daemon NATs to another bridge); and scoped changes for tests and remedies, each
removed after its `with` block. Whether an address is this namespace's own (`local`) is a
bind, so it is here too.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.host.ruleset import (  # the rules as text, read and weighed: pure (ruleset.py)
    ANSWERS as ANSWERS,
)
from harness.host.ruleset import (
    DEFAULT_REJECT as DEFAULT_REJECT,
)
from harness.host.ruleset import (
    FilterRule as FilterRule,
)
from harness.host.ruleset import (
    NatRule as NatRule,
)
from harness.host.ruleset import (
    Rule as Rule,
)
from harness.host.ruleset import (
    dnat as dnat,
)
from harness.host.ruleset import (
    forward_stop as forward_stop,
)
from harness.host.ruleset import (
    matching as matching,
)
from harness.host.ruleset import (
    parse_filter as parse_filter,
)
from harness.host.ruleset import (
    parse_iptables as parse_iptables,
)
from harness.host.ruleset import (
    parse_nat as parse_nat,
)
from harness.host.ruleset import (
    parse_nft as parse_nft,
)
from harness.host.ruleset import xtables_table

COMMENT = "oh-matrix"  # on every rule the harness inserts, so a leftover is recognisable


def _run(*cmd: str) -> str | None:
    """What the command printed; None when it cannot be run here (not installed, not root)."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def rules() -> list[Rule] | None:
    """The host's rules on the INPUT path that drop or reject, from every front end that
    answers; None when none could be read (no iptables or nft here, or not root)."""
    ipt, nft = _run("iptables", "-S", "INPUT"), _run("nft", "list", "ruleset")
    if ipt is None and nft is None:
        return None
    return [*(parse_iptables(ipt) if ipt is not None else []), *(parse_nft(nft) if nft is not None else [])]


def front_ends() -> str:
    """Which front ends hold rules here, in words (doctor, host facts)."""
    parts = []
    version = (_run("iptables", "-V") or "").strip()
    if version:
        parts.append(version)
    nft = _run("nft", "list", "tables")
    if nft is not None:
        own = [ln.strip() for ln in nft.splitlines() if ln.strip() and not xtables_table(ln)]
        parts.append(f"nftables ({', '.join(t.removeprefix('table ') for t in own) or 'no tables of its own'})")
    return "; ".join(parts) or "not readable here"


def nat_rules() -> list[NatRule] | None:
    """The daemon's nat DOCKER chain here; None when it cannot be read (not root, no such chain)."""
    text = _run("iptables", "-t", "nat", "-S", "DOCKER")
    return None if text is None else parse_nat(text)


def local(addr: str) -> bool:
    """Whether `addr` is one of this network namespace's own addresses (a bind to it works),
    where a connect meets INPUT or the daemon's NAT, not a container's address."""
    try:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def forward_rules() -> tuple[dict[str, list[FilterRule]], str] | None:
    """The filter table's chains and FORWARD's policy here (`iptables -S`); None: not readable."""
    text = _run("iptables", "-S")
    if text is None:
        return None
    policy = next((ln.split()[2] for ln in text.splitlines() if ln.startswith("-P FORWARD ")), "ACCEPT")
    return parse_filter(text), policy


# -- changes, each undone after its block ------------------------------------------------------

@contextmanager
def drop_bridge_to_host(ports: str, bridge: str = "docker0") -> Iterator[list[str]]:
    """A stand-in for ufw's default deny: drop NEW TCP connections from the bridge to the host
    on a port range. ufw accepts established and related traffic before its default deny, so
    replies to the host's own connections into a container (a published port's docker-proxy,
    whose source port may fall in the range) still pass, as on a host with ufw."""
    with _iptables_rule(["-i", bridge, "-p", "tcp", "--dport", ports, "-m", "conntrack", "--ctstate", "NEW",
                         "-j", "DROP"]) as rule:
        yield rule


@contextmanager
def reject_bridge_to_host(ports: str, reject_with: str | None = "icmp-host-prohibited",
                          bridge: str = "docker0") -> Iterator[list[str]]:
    """A cloud image's INPUT reject for NEW connections from the bridge (tests, benchmark);
    `reject_with` None: a plain `-j REJECT`, which answers with the default (ANSWERS)."""
    answer = ["--reject-with", reject_with] if reject_with else []
    with _iptables_rule(["-i", bridge, "-p", "tcp", "--dport", ports, "-m", "conntrack", "--ctstate", "NEW",
                         "-j", "REJECT", *answer]) as rule:
        yield rule


@contextmanager
def accept_bridge_to_host(ports: str, bridge: str, found: list[Rule]) -> Iterator[str]:
    """An accept rule for TCP from `bridge` to the host's `ports`, ahead of the rules that
    stop it, in each front end that holds one of them (iptables, and each nft chain: an
    accept in one table does not bypass another table's reject). Yields what was done."""
    done = []
    with contextlib.ExitStack() as stack:
        if any(r.source == "iptables" for r in found):
            stack.enter_context(_iptables_rule(["-i", bridge, "-p", "tcp", "--dport", ports, "-j", "ACCEPT"]))
            done.append(f"iptables -I INPUT -i {bridge} -p tcp --dport {ports} -j ACCEPT")
        for chain in dict.fromkeys(r.chain for r in found if r.source == "nft"):
            stack.enter_context(_nft_rule(chain, f'iifname "{bridge}" tcp dport {ports.replace(":", "-")} accept'))
            done.append(f'nft insert rule {chain} iifname "{bridge}" tcp dport {ports.replace(":", "-")} accept')
        yield "; ".join(done) + " (for the rerun; deleted after it)"


@contextmanager
def _iptables_rule(spec: list[str]) -> Iterator[list[str]]:
    rule = ["INPUT", *spec, "-m", "comment", "--comment", COMMENT]
    subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    try:
        yield rule
    finally:
        subprocess.run(["iptables", "-D", *rule], capture_output=True)


@contextmanager
def _nft_rule(chain: str, rule: str) -> Iterator[str]:
    out = subprocess.run(["nft", "--echo", "--handle", "insert", "rule", *chain.split(),
                          *rule.split(), "comment", f'"{COMMENT}"'], check=True, capture_output=True, text=True).stdout
    handle = re.search(r"# handle (\d+)", out)
    try:
        yield rule
    finally:
        if handle:
            subprocess.run(["nft", "delete", "rule", *chain.split(), "handle", handle[1]], capture_output=True)


def ephemeral_ports() -> str:
    """The kernel's ephemeral range (`LO:HI`), where a 1.x app's sandbox ports and the
    harness's own free ports come from."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        lo, hi = "32768", "60999"  # Linux's default
    return f"{lo}:{hi}"
