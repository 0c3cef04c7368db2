"""The host's firewall as it bears on a cell: the rules that drop or reject what a container
on a bridge sends to the host (the INPUT path: Docker does not DNAT a container's traffic to
its own bridge's gateway, so it meets INPUT, where ufw, firewalld and cloud images' rules
drop or reject it), read from iptables (legacy or nf_tables, `iptables -S`) and from native
nftables rulesets (`nft list ruleset`: an `inet` table of nftables.conf, firewalld's) alike;
and scoped changes for tests and remedies, each removed after its `with` block.

Not read: the FORWARD path (a container on a user-defined network reaching a published port
through NAT) and rules of a daemon on another machine.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COMMENT = "oh-matrix"  # on every rule the harness inserts, so a leftover is recognisable


@dataclass(frozen=True)
class Rule:
    """One rule (or a chain's policy) that stops traffic, as its front end prints it."""

    text: str
    source: str  # "iptables" or "nft"
    chain: str  # INPUT, or `inet filter input` for nft
    action: str  # "drop", "reject", or "accept" (read to know what comes first)
    reject_with: str = ""  # icmp-host-prohibited, tcp-reset, ... ("" : the front end's default)
    iface: str | None = None  # the input interface it is limited to (None: any)
    ports: tuple[tuple[int, int], ...] | None = None  # TCP destination port ranges (None: any)
    protocol: str | None = None  # tcp, udp, ... (None: any)
    policy: bool = False  # the chain's policy: what comes to a packet no rule took

    def covers(self, bridge: str, port: int | None) -> bool:
        """Whether TCP from `bridge` to the host's `port` (None: some port) meets this rule."""
        if self.protocol not in (None, "tcp"):
            return False
        if self.iface is not None and not _iface_matches(self.iface, bridge):
            return False
        if self.ports is None or port is None:
            return True
        return any(lo <= port <= hi for lo, hi in self.ports)

    @property
    def resets(self) -> bool:
        """A reject that answers a SYN with a TCP reset: to the caller, "connection refused"."""
        return self.action == "reject" and "reset" in self.reject_with


def _iface_matches(pattern: str, bridge: str) -> bool:
    negated = pattern.startswith("!")
    name = pattern.lstrip("!").strip()
    hit = bridge.startswith(name[:-1]) if name.endswith(("+", "*")) else bridge == name
    return hit != negated


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
        own = [ln.strip() for ln in nft.splitlines() if ln.strip() and not _xtables_table(ln)]
        parts.append(f"nftables ({', '.join(t.removeprefix('table ') for t in own) or 'no tables of its own'})")
    return "; ".join(parts) or "not readable here"


def _xtables_table(line: str) -> bool:
    """The tables iptables-nft makes (their rules are read through `iptables -S` already)."""
    return bool(re.fullmatch(r"\s*table (ip|ip6) (filter|nat|mangle|raw|security)\s*", line))


def parse_iptables(text: str) -> list[Rule]:
    """INPUT's rules in order (its policy last, where it applies): the accepts that a new
    connection can meet, and the drops and rejects."""
    out, policy = [], None
    for line in text.splitlines():
        words = line.split()
        if line.startswith("-P INPUT ") and words[-1] in ("DROP", "REJECT"):
            policy = Rule(line, "iptables", "INPUT", words[-1].lower(), policy=True)
            continue
        if not line.startswith("-A INPUT ") or "-j" not in words:
            continue
        target = words[words.index("-j") + 1]
        if target not in ("DROP", "REJECT", "ACCEPT") or (target == "ACCEPT" and not _new_may_match(words)):
            continue
        out.append(Rule(line, "iptables", "INPUT", target.lower(), reject_with=_after(words, "--reject-with") or "",
                        iface=_iface(words), ports=_iptables_ports(words), protocol=_after(words, "-p")))
    return [*out, *([policy] if policy else [])]


def _new_may_match(words: list[str]) -> bool:
    """An accept that a new connection from a bridge can meet: not one for established
    connections only, and none limited by an address this reading does not weigh."""
    state = _after(words, "--ctstate") or _after(words, "--state")
    return (state is None or "NEW" in state) and not {"-s", "-d", "--src-range", "--dst-range"} & set(words)


def _after(words: list[str], flag: str) -> str | None:
    return words[words.index(flag) + 1] if flag in words and words.index(flag) + 1 < len(words) else None


def _iface(words: list[str]) -> str | None:
    if "-i" not in words:
        return None
    at = words.index("-i")
    return f"!{words[at + 1]}" if at > 0 and words[at - 1] == "!" else words[at + 1]


def _iptables_ports(words: list[str]) -> tuple[tuple[int, int], ...] | None:
    spec = _after(words, "--dport") or _after(words, "--dports")
    return _ranges(spec.replace(":", "-")) if spec else None


def _ranges(spec: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in re.split(r"[,\s]+", spec.strip("{} ")):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return tuple(out)


def parse_nft(text: str) -> list[Rule]:
    """Rules of base chains on the input hook, in tables other than iptables-nft's own."""
    out: list[Rule] = []
    table, chain, hooked, skip = "", "", False, False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):  # iptables-nft's warnings about its own tables
            continue
        if m := re.match(r"table (\S+) (\S+) \{", line):
            table, skip = f"{m[1]} {m[2]}", _xtables_table(f"table {m[1]} {m[2]}")
        elif m := re.match(r"chain (\S+) \{", line):
            chain, hooked = m[1], False
        elif line.startswith("type ") and " hook input " in f" {line} ":
            hooked = True
            policy = re.search(r"policy (drop|accept)", line)
            if policy and policy[1] == "drop" and not skip:
                out.append(Rule(line, "nft", f"{table} {chain}", "drop", policy=True))
        elif hooked and not skip and (verdict := re.search(r"\b(drop|reject|accept)\b(.*)$", line)):
            if verdict[1] == "accept" and ((re.search(r"\bct state\b", line) and "new" not in line)
                                           or re.search(r"\b(ip|ip6) (s|d)addr\b", line)):
                continue  # established connections only, or an address this reading does not weigh
            ports = re.search(r"tcp dport (\{[^}]*\}|\S+)", line)
            iface = re.search(r"\biifname (!= )?\"?([^\s\"]+)\"?", line)
            out.append(Rule(line, "nft", f"{table} {chain}", verdict[1],
                            reject_with=_nft_reject(verdict[2]) if verdict[1] == "reject" else "",
                            iface=(("!" if iface[1] else "") + iface[2]) if iface else None,
                            ports=_ranges(ports[1]) if ports else None,
                            protocol="tcp" if ports or "tcp" in line.split() else None))
    return out


def _nft_reject(rest: str) -> str:
    if "tcp reset" in rest:
        return "tcp-reset"
    m = re.search(r"type (\S+)", rest)
    return m[1] if m else ""


def matching(found: list[Rule] | None, bridge: str, port: int | None) -> list[Rule]:
    """The rules that stop TCP from `bridge` to the host's `port` (None: some port): in each
    chain, the first rule that meets it, unless that one accepts; a drop policy when none
    does. A packet must pass every chain (iptables' INPUT, each nftables input chain)."""
    out = []
    for chain in dict.fromkeys(r.chain for r in found or []):
        rules = [x for x in found or [] if x.chain == chain]
        for r in [x for x in rules if not x.policy] + [x for x in rules if x.policy]:
            if r.action == "accept":
                if r.covers(bridge, port) and (r.ports is None or port is not None):
                    break  # let through before any stopping rule
            elif r.covers(bridge, port):
                out.append(r)
                break
    return out


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
def reject_bridge_to_host(ports: str, reject_with: str = "icmp-host-prohibited",
                          bridge: str = "docker0") -> Iterator[list[str]]:
    """A cloud image's INPUT reject for NEW connections from the bridge (tests, benchmark)."""
    with _iptables_rule(["-i", bridge, "-p", "tcp", "--dport", ports, "-m", "conntrack", "--ctstate", "NEW",
                         "-j", "REJECT", "--reject-with", reject_with]) as rule:
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
