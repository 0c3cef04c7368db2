"""The host firewall's rules as text, read and weighed: the rules that drop or reject what a
container on a bridge sends to the host (the INPUT path: Docker does not DNAT a container's
traffic to its own bridge's gateway, so it meets INPUT, where ufw, firewalld and cloud images'
rules drop or reject it), as iptables prints them (legacy or nf_tables, `iptables -S`) and as
native nftables prints its rulesets (`nft list ruleset`: an `inet` table of nftables.conf,
firewalld's) alike. Reading nothing and running nothing: the commands that print the rules,
and the changes to them, are firewall.py's; the judge (cells/diagnosis.py) needs this alone.

A rule is read with what it matches of a new TCP connection: the input interface, source and
destination addresses (`-s`, `-d`, `--src-range`; `ip saddr`), destination ports (`--dport`,
`-m multiport`; `tcp dport`, with `!`/`!=`), the protocol, the conntrack state (a rule only for
established or invalid packets never meets one) and, for a reject, what it sends back
(ANSWERS). What else a rule matches (an ipset, a rate limit) is kept as `unweighed`, and
`matching` says it is not sure of such a rule, or of one behind an accept it cannot weigh.

Which chain a connect from a bridge to this host meets is read from the daemon's nat DOCKER
chain (`NatRule`): a bridge's `-j RETURN` (the userland proxy's) sends its connects to a local
socket through INPUT; a published port's DNAT sends them to the container, through FORWARD.
A connect the daemon NATs to a container on another bridge (`--userland-proxy=false`) is
followed through the filter table's FORWARD chain and the chains it jumps to (DOCKER-USER,
Docker's isolation stages, DOCKER: `forward_stop`), where the daemon's own isolation rule
drops it.

Not read: chains of INPUT's rules jump to (ufw's, firewalld's), nftables' forward hooks, IPv6,
and rules of a daemon on another machine.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import re
import shlex
from dataclasses import dataclass

# What a reject sends back, by iptables' name for it (nft's names are read as these), in words,
# and what a TCP connect then fails with on Linux. Measured on Linux 6.x with a rule of each
# kind, in both iptables front ends and nft (inet and ip tables), in a namespace of its own.
ANSWERS: dict[str, tuple[str, int]] = {
    "icmp-port-unreachable": ("an ICMP port unreachable (what a reject sends unless told otherwise)",
                              errno.ECONNREFUSED),
    "icmp-net-unreachable": ("an ICMP net unreachable", errno.ENETUNREACH),
    "icmp-host-unreachable": ("an ICMP host unreachable", errno.EHOSTUNREACH),
    "icmp-proto-unreachable": ("an ICMP protocol unreachable", errno.ENOPROTOOPT),
    "icmp-net-prohibited": ("an ICMP net prohibited", errno.ENETUNREACH),
    "icmp-host-prohibited": ("an ICMP host prohibited", errno.EHOSTUNREACH),
    "icmp-admin-prohibited": ("an ICMP administratively prohibited", errno.EHOSTUNREACH),
    "tcp-reset": ("a TCP reset", errno.ECONNREFUSED),
}
DEFAULT_REJECT = "icmp-port-unreachable"  # iptables' REJECT and nft's plain `reject` alike


@dataclass(frozen=True)
class Rule:
    """One rule (or a chain's policy) that stops traffic, as its front end prints it."""

    text: str
    source: str  # "iptables" or "nft"
    chain: str  # INPUT, or `inet filter input` for nft
    action: str  # "drop", "reject", or "accept" (read to know what comes first)
    reject_with: str = ""  # a reject's answer, a key of ANSWERS (iptables' name), or as printed if unknown
    iface: str | None = None  # the input interface(s) it is limited to, `a,b`, `!` negates (None: any)
    ports: tuple[tuple[int, int], ...] | None = None  # TCP destination port ranges (None: any)
    protocol: str | None = None  # tcp, udp, ... (None: any)
    policy: bool = False  # the chain's policy: what comes to a packet no rule took
    src: str | None = None  # source addresses, `a/n,b-c`, `!` negates (None: any)
    dst: str | None = None  # destination addresses, the same way
    new: bool = True  # a new connection's SYN can meet it (no state match, or one that takes NEW)
    ipv4: bool = True  # it can meet IPv4 (not an nft rule for ip6 only)
    unweighed: tuple[str, ...] = ()  # its matches this reading does not weigh
    # Whether the reading is sure the rule meets the path it was matched to (firewall.matching):
    # every match weighed, and no accept it could not weigh ahead of it.
    sure: bool = True
    # The daemon's nat rule that sent the connect this way (a published port's DNAT, whose
    # container is on another bridge: the FORWARD path), as `iptables -t nat -S` prints it.
    via: str = ""

    def covers(self, bridge: str, port: int | None, src: str | None = None, dst: str | None = None) -> bool:
        """Whether a new TCP connection from `bridge` (from `src`) to the host's `port` (at
        `dst`) may meet this rule; None: some port, an address not known."""
        if self.protocol not in (None, "tcp") or not self.new or not self.ipv4:
            return False
        if self.iface is not None and not _iface_matches(self.iface, bridge):
            return False
        for spec, addr in ((self.src, src), (self.dst, dst)):
            if spec and addr and not _addr_matches(spec, addr):
                return False
        if self.ports is None or port is None:
            return True
        return any(lo <= port <= hi for lo, hi in self.ports)

    def weighed(self, src: str | None, dst: str | None) -> bool:
        """Whether `covers` said for sure: no match left unweighed, no address it had to assume."""
        return not self.unweighed and not (self.src and not src) and not (self.dst and not dst)

    @property
    def resets(self) -> bool:
        """A reject that answers a SYN with a TCP reset: to the caller, "connection refused"."""
        return self.action == "reject" and self.reject_with == "tcp-reset"

    @property
    def sends(self) -> str:
        """What this reject answers a SYN with, in words."""
        return ANSWERS.get(self.reject_with, (f"'{self.reject_with}'", 0))[0]

    @property
    def fails_with(self) -> int | None:
        """The error a TCP connect this reject answers fails with (None: not a reject, or a kind
        not known here)."""
        return ANSWERS[self.reject_with][1] if self.action == "reject" and self.reject_with in ANSWERS else None


def _iface_matches(pattern: str, bridge: str) -> bool:
    negated = pattern.startswith("!")
    names = [n.strip() for n in pattern.lstrip("!").split(",") if n.strip()]
    hit = any(bridge.startswith(n[:-1]) if n.endswith(("+", "*")) else bridge == n for n in names)
    return hit != negated


def _addr_matches(spec: str, addr: str) -> bool:
    """Whether `addr` is in `spec` (`172.17.0.0/16`, `10.0.0.1-10.0.0.9`, comma-separated;
    `!` negates). An IPv4 address never meets an IPv6 spec."""
    negated = spec.startswith("!")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return True  # not an address this reading knows: assume it meets
    hit = False
    for part in (x.strip() for x in spec.lstrip("!").split(",") if x.strip()):
        try:
            if "-" in part:
                lo, _, hi = part.partition("-")
                hit = ipaddress.ip_address(lo) <= ip <= ipaddress.ip_address(hi)  # type: ignore[operator]
            else:
                hit = ip in ipaddress.ip_network(part, strict=False)
        except (ValueError, TypeError):
            hit = False
        if hit:
            break
    return hit != negated


def xtables_table(line: str) -> bool:
    """The tables iptables-nft makes (their rules are read through `iptables -S` already)."""
    return bool(re.fullmatch(r"\s*table (ip|ip6) (filter|nat|mangle|raw|security)\s*", line))


def parse_iptables(text: str) -> list[Rule]:
    """INPUT's rules in order (its policy last, where it applies): the accepts, drops and
    rejects, with what each one matches, as `iptables -S` prints them (both front ends) or
    `iptables-save` (its filter table only: `-A INPUT` of nat or mangle stops nothing; its
    policy as `:INPUT DROP [0:0]`)."""
    out, policy, table = [], None, "filter"
    for line in text.splitlines():
        words = line.split()
        if line.startswith("*"):  # iptables-save: the table the lines below belong to
            table = line[1:].strip()
            continue
        if table != "filter":
            continue
        if words[:2] == ["-P", "INPUT"] or words[:1] == [":INPUT"]:
            target = words[2 if words[0] == "-P" else 1] if len(words) > 2 else ""
            if target in ("DROP", "REJECT"):
                policy = Rule(line, "iptables", "INPUT", target.lower(), policy=True)
            continue
        if line.startswith("-A INPUT ") and (rule := _read_iptables(line)) is not None and rule.new:
            out.append(rule)  # one no new connection meets (ESTABLISHED, INVALID) never decides here
    return [*out, *([policy] if policy else [])]


# The matches the reading weighs (the rest make a rule `unweighed`): module names, and the
# options that take one value, by what they say.
_MODULES = {"tcp", "multiport", "conntrack", "state", "comment", "iprange"}
_OPTIONS = {"-i": "iface", "-s": "src", "--src-range": "src", "-d": "dst", "--dst-range": "dst", "-p": "protocol",
            "-j": "target", "--dport": "ports", "--dports": "ports", "--destination-port": "ports",
            "--destination-ports": "ports", "--reject-with": "reject", "--state": "state", "--ctstate": "state",
            "-m": "module", "--comment": "comment"}


def _read_iptables(line: str) -> Rule | None:
    """One `-A INPUT` line that accepts, drops or rejects; None for any other target (a jump
    to a chain of its own, LOG, RETURN: not followed)."""
    try:
        words = shlex.split(line)[2:]
    except ValueError:
        words = line.split()[2:]
    got: dict[str, str] = {}
    unweighed: list[str] = []
    new, i, negated = True, 0, False
    while i < len(words):
        flag = words[i]
        if flag == "!":
            negated, i = True, i + 1
            continue
        if flag in _OPTIONS:
            value, what = (words[i + 1] if i + 1 < len(words) else ""), _OPTIONS[flag]
            i += 2
            if what == "module" and value not in _MODULES:
                unweighed.append(f"-m {value}")
            elif what == "state":
                new = new and ("NEW" in value.split(",")) != negated
            elif what not in ("module", "comment"):
                got[what] = ("!" if negated else "") + value
        elif flag == "--syn":
            new, i = new and not negated, i + 1
        else:  # a match this reading does not weigh: it and its values
            unweighed.append(flag)
            i += 1
            while i < len(words) and not words[i].startswith("-") and words[i] != "!":
                i += 1
        negated = False
    target = got.get("target", "")
    if target not in ("ACCEPT", "DROP", "REJECT"):
        return None
    ports = got.get("ports")
    return Rule(line, "iptables", "INPUT", target.lower(),
                reject_with=(got.get("reject") or DEFAULT_REJECT) if target == "REJECT" else "",
                iface=got.get("iface"), ports=_port_spec(ports.replace(":", "-")) if ports else None,
                protocol=_protocol(got.get("protocol")), src=got.get("src"), dst=got.get("dst"),
                new=new, unweighed=tuple(unweighed))


def _protocol(spec: str | None) -> str | None:
    """`-p tcp` (or 6) is tcp, `! -p tcp` is none that TCP meets, `! -p udp` and `all` any."""
    if spec is None:
        return None
    name = {"6": "tcp", "17": "udp"}.get(spec.lstrip("!"), spec.lstrip("!"))
    if spec.startswith("!"):
        return "not-tcp" if name == "tcp" else None
    return None if name == "all" else name


def _port_spec(spec: str) -> tuple[tuple[int, int], ...]:
    """Port ranges from `3000,30000-39999` or nft's `{ 80, 3000-4000 }`; `!` (or nft's `!= `)
    first: every port but those."""
    negated = spec.startswith("!")
    ranges = _ranges(spec.lstrip("!= "))
    if not negated:
        return ranges
    out, lo = [], 1
    for a, b in sorted(ranges):
        if a > lo:
            out.append((lo, a - 1))
        lo = max(lo, b + 1)
    return (*out, *([(lo, 65535)] if lo <= 65535 else []))


def _ranges(spec: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in re.split(r"[,\s]+", spec.strip("{} ")):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return tuple(out)


# nft: the matches the reading weighs, and the statements that match nothing.
_SET = r"(!= )?(\{[^}]*\}|\S+)"
_NFT_WEIGHED = (rf"\biif(name)? {_SET}", rf"\b(tcp|th|udp|sctp) dport {_SET}", rf"\bct state {_SET}",
                rf"\bip6? (s|d)addr {_SET}", r"\bmeta l4proto (\{[^}]*\}|\S+)", r"\bip protocol (\{[^}]*\}|\S+)",
                r"\bmeta nfproto \S+", r"\bcounter( packets \d+ bytes \d+)?",
                r"\blog( (prefix|level|flags|group|snaplen|queue-threshold) (\"[^\"]*\"|\S+))*")


def parse_nft(text: str) -> list[Rule]:
    """Rules of base chains on the input hook, in tables other than iptables-nft's own."""
    out: list[Rule] = []
    table, chain, hooked, skip = "", "", False, False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):  # iptables-nft's warnings about its own tables
            continue
        if m := re.match(r"table (\S+) (\S+) \{", line):
            table, skip = f"{m[1]} {m[2]}", xtables_table(f"table {m[1]} {m[2]}")
        elif m := re.match(r"chain (\S+) \{", line):
            chain, hooked = m[1], False
        elif line.startswith("type ") and " hook input " in f" {line} ":
            hooked = True
            policy = re.search(r"policy (drop|accept)", line)
            if policy and policy[1] == "drop" and not skip:
                out.append(Rule(line, "nft", f"{table} {chain}", "drop", policy=True))
        elif hooked and not skip and (verdict := re.search(r"\b(drop|reject|accept)\b(.*)$", line)):
            rule = _read_nft(line, line[:verdict.start()], verdict[1], verdict[2], f"{table} {chain}")
            if rule.new:  # one no new connection meets (`ct state established,related`, `invalid`) never decides here
                out.append(rule)
    return out


def _read_nft(line: str, matches: str, action: str, rest: str, chain: str) -> Rule:
    def one(pattern: str) -> str | None:
        m = re.search(pattern + " " + _SET, matches)
        return None if m is None else ("!" if m[1] else "") + m[2].strip("{} ").replace('"', "").replace(" ", "")

    reject_with = _nft_reject(rest) if action == "reject" else ""
    words = set(re.findall(r"[a-z0-9]+", matches))
    protocol = ("tcp" if "tcp" in words or reject_with == "tcp-reset" else
                next((w for w in ("udp", "sctp", "icmp", "icmpv6") if w in words), None))
    state = one(r"\bct state")
    left = matches
    for pattern in _NFT_WEIGHED:
        left = re.sub(pattern, " ", left)
    ports = one(r"\b(?:tcp|th) dport")
    return Rule(line, "nft", chain, action, reject_with=reject_with, iface=one(r"\biif(?:name)?"),
                ports=_port_spec(ports) if ports else None, protocol=protocol,
                src=one(r"\bip saddr"), dst=one(r"\bip daddr"),
                new=state is None or ("new" in state.lstrip("!").split(",")) != state.startswith("!"),
                ipv4=not (re.search(r"\b(ip6|ipv6|icmpv6)\b", matches) or "icmpv6" in rest),
                unweighed=tuple(left.split()))


def _nft_reject(rest: str) -> str:
    """The reject's answer, by iptables' name: `reject` (port unreachable), `reject with tcp
    reset`, `reject with icmp[x] [type] host-prohibited` (nft 1.0 prints no `type`)."""
    if "tcp reset" in rest:
        return "tcp-reset"
    m = re.search(r"with (icmpx|icmpv6|icmp) (?:type )?(\S+)", rest)
    if not m:
        return DEFAULT_REJECT
    kind = {"prot-unreachable": "proto-unreachable", "no-route": "net-unreachable"}.get(m[2], m[2])
    return f"icmp-{kind}"


def matching(found: list[Rule] | None, bridge: str, port: int | None, src: str | None = None,
             dst: str | None = None) -> list[Rule]:
    """The rules that stop a new TCP connection from `bridge` (from `src`) to the host's `port`
    (at `dst`; None: some port, an address not known): in each chain, the first rule that
    meets it, unless that one accepts; a drop policy when none does. A packet must pass every
    chain (iptables' INPUT, each nftables input chain). A stopping rule comes back not `sure`
    when the reading could not weigh all it matches, or an accept it could not weigh comes
    first (that accept might let the connect through)."""
    out = []
    for chain in dict.fromkeys(r.chain for r in found or []):
        rules = [x for x in found or [] if x.chain == chain]
        maybe_let_through = False
        for r in [x for x in rules if not x.policy] + [x for x in rules if x.policy]:
            if not r.covers(bridge, port, src, dst):
                continue
            if r.action == "accept":
                if r.weighed(src, dst) and (r.ports is None or port is not None):
                    break  # let through before any stopping rule
                maybe_let_through = True
                continue
            out.append(dataclasses.replace(r, sure=r.weighed(src, dst) and not maybe_let_through))
            break
    return out


# -- which chain a connect from a bridge to this host meets: INPUT, or NAT to a container ------

@dataclass(frozen=True)
class NatRule:
    """One rule of the daemon's nat DOCKER chain (`iptables -t nat -S DOCKER`), which
    PREROUTING jumps to for a packet to any local address: `-i BRIDGE -j RETURN` (the userland
    proxy's: that bridge's connects reach docker-proxy through INPUT) or a published port's
    DNAT to its container (without the proxy, every bridge's, its own included)."""

    text: str
    target: str  # RETURN or DNAT
    iface: str | None = None  # `!` negates (None: any)
    ports: tuple[tuple[int, int], ...] | None = None
    dst: str | None = None  # the local address it is limited to (`-d 127.0.0.1/32`)
    to: str = ""  # DNAT's --to-destination, `ADDRESS:PORT`

    def meets(self, bridge: str, port: int | None, dst: str | None) -> bool:
        if self.iface is not None and not _iface_matches(self.iface, bridge):
            return False
        if self.dst and dst and not _addr_matches(self.dst, dst):
            return False
        if self.ports is None:
            return True
        return port is not None and any(lo <= port <= hi for lo, hi in self.ports)


def parse_nat(text: str) -> list[NatRule]:
    """The DOCKER chain's RETURNs and TCP DNATs in order, from `iptables -t nat -S DOCKER`
    (or `iptables-save`'s nat table)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("-A DOCKER "):
            continue
        words, got, negated = line.split()[2:], {}, False
        for i, w in enumerate(words):
            if w == "!":
                negated = True
                continue
            if w in ("-i", "-d", "-p", "--dport", "-j", "--to-destination") and i + 1 < len(words):
                got[w] = ("!" if negated else "") + words[i + 1]
            negated = False
        target, proto = got.get("-j", ""), got.get("-p")
        if target == "RETURN" or (target == "DNAT" and proto in (None, "tcp")):
            ports = got.get("--dport")
            out.append(NatRule(line, target, got.get("-i"), _port_spec(ports.replace(":", "-")) if ports else None,
                               got.get("-d"), got.get("--to-destination", "")))
    return out


def dnat(nat: list[NatRule], bridge: str, port: int | None, dst: str | None) -> NatRule | None:
    """The DNAT a new TCP connect from `bridge` to this host's `dst`:`port` meets first; None
    when a RETURN comes first or none meets it: then it reaches a local socket through INPUT."""
    for r in nat:
        if r.meets(bridge, port, dst):
            return r if r.target == "DNAT" else None
    return None


# -- the FORWARD path a connect NATed to a container takes (the daemon's own chains) ------------

@dataclass(frozen=True)
class FilterRule:
    """One rule of the filter table's forwarding chains (`iptables -S`), with what it matches of
    a forwarded new TCP connection: in and out interface, addresses, destination port, state."""

    text: str
    chain: str
    target: str  # ACCEPT, DROP, REJECT, RETURN, or a chain to jump to
    iface: str | None = None
    oface: str | None = None
    src: str | None = None
    dst: str | None = None
    protocol: str | None = None
    ports: tuple[tuple[int, int], ...] | None = None
    new: bool = True
    unweighed: tuple[str, ...] = ()
    reject_with: str = DEFAULT_REJECT

    def meets(self, iface: str, oface: str, src: str | None, dst: str | None, port: int | None) -> bool:
        if self.protocol not in (None, "tcp") or not self.new:
            return False
        for pattern, name in ((self.iface, iface), (self.oface, oface)):
            if pattern is not None and not _iface_matches(pattern, name):
                return False
        for spec, addr in ((self.src, src), (self.dst, dst)):
            if spec and addr and not _addr_matches(spec, addr):
                return False
        return self.ports is None or (port is not None and any(lo <= port <= hi for lo, hi in self.ports))


_FILTER_OPTIONS = {"-i": "iface", "-o": "oface", "-s": "src", "-d": "dst", "-p": "protocol", "-j": "target",
                   "--dport": "ports", "--dports": "ports", "--state": "state", "--ctstate": "state",
                   "-m": "module", "--comment": "comment", "--reject-with": "reject"}


def parse_filter(text: str) -> dict[str, list[FilterRule]]:
    """Every chain's rules of the filter table, in order, from `iptables -S` (all chains)."""
    chains: dict[str, list[FilterRule]] = {}
    for line in text.splitlines():
        if not line.startswith("-A "):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        chain, got, unweighed, negated, new, i = words[1], dict[str, str](), [], False, True, 2
        while i < len(words):
            flag = words[i]
            if flag == "!":
                negated, i = True, i + 1
                continue
            if flag in _FILTER_OPTIONS and i + 1 < len(words):
                what, value = _FILTER_OPTIONS[flag], words[i + 1]
                i += 2
                if what == "state":
                    new = new and ("NEW" in value.split(",")) != negated
                elif what == "module" and value not in _MODULES:
                    unweighed.append(f"-m {value}")
                elif what not in ("module", "comment"):
                    got[what] = ("!" if negated else "") + value
            else:
                unweighed.append(flag)
                i += 1
                while i < len(words) and not words[i].startswith("-") and words[i] != "!":
                    i += 1
            negated = False
        ports = got.get("ports")
        chains.setdefault(chain, []).append(FilterRule(
            line, chain, got.get("target", ""), got.get("iface"), got.get("oface"), got.get("src"), got.get("dst"),
            _protocol(got.get("protocol")), _port_spec(ports.replace(":", "-")) if ports else None, new,
            tuple(unweighed), got.get("reject") or DEFAULT_REJECT))
    return chains


def forward_stop(chains: dict[str, list[FilterRule]], policy: str, iface: str, oface: str, src: str | None,
                 dst: str | None, port: int | None) -> Rule | None:
    """The rule that drops or rejects a new TCP connection forwarded from `iface` to `oface`
    (from `src` to `dst`:`port`, after the daemon's DNAT), following the jumps from FORWARD
    (DOCKER-USER, the isolation stages, DOCKER) as the kernel does; the chain's `policy`
    (`-P FORWARD DROP`) when nothing accepts it; None when a rule accepts it. A rule with a
    match this reading does not weigh is passed over, and what it decides comes back not `sure`."""
    unsure: list[str] = []

    def walk(chain: str, depth: int) -> FilterRule | None:
        for r in chains.get(chain, []):
            if not r.meets(iface, oface, src, dst, port):
                continue
            if r.unweighed:
                unsure.extend(r.unweighed)
                continue
            if r.target in ("ACCEPT", "DROP", "REJECT"):
                return r
            if r.target == "RETURN":
                return None
            if r.target in chains and depth < 8 and (hit := walk(r.target, depth + 1)) is not None:
                return hit  # what decided in the chain it jumped to; a RETURN there comes back here
        return None

    hit = walk("FORWARD", 0)
    if hit is not None and hit.target == "ACCEPT":
        return None
    if hit is None:
        if policy not in ("DROP", "REJECT"):
            return None
        return Rule(f"-P FORWARD {policy}", "iptables", "FORWARD", policy.lower(), policy=True,
                    protocol="tcp", unweighed=tuple(unsure), sure=not unsure)
    return Rule(hit.text, "iptables", hit.chain, hit.target.lower(),
                reject_with=hit.reject_with if hit.target == "REJECT" else "",
                iface=hit.iface, protocol="tcp", unweighed=tuple(unsure), sure=not unsure)
