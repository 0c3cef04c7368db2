"""The host firewall as the diagnosis reads it: iptables and nftables rules on the INPUT path,
which of them meets a connect from a bridge, and the decisions they support."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from harness.cells import watch
from harness.cells.diagnosis import Judge, Observation
from harness.host import firewall
from harness.host.netprobe import NetProbe

# ruff: noqa: E501  (iptables -S prints a rule per line, however long)

IPTABLES = """-P INPUT ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i docker0 -p tcp -m tcp --dport 30000:39999 -m conntrack --ctstate NEW -j REJECT --reject-with icmp-host-prohibited
-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j DROP
-A INPUT -p tcp -m multiport --dports 3000,4000 -j REJECT --reject-with tcp-reset
"""
NFT = """table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy accept;
		iifname "docker0" tcp dport 30000-39999 counter packets 0 bytes 0 reject
	}
}
# Warning: table ip filter is managed by iptables-nft, do not touch!
table inet firewalld_like {
	chain input {
		type filter hook input priority filter + 10; policy accept;
		ct state established,related accept
		iifname "br-*" tcp dport { 8000, 40000-50000 } reject with tcp reset
		iifname != "lo" tcp dport 5432 drop
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		reject with icmpx type admin-prohibited
	}
}
"""


def test_iptables_rules_are_read_with_their_interface_ports_and_reject_kind() -> None:
    rules = firewall.parse_iptables(IPTABLES)
    assert [(r.action, r.iface, r.ports, r.reject_with) for r in rules] == [
        ("reject", "docker0", ((30000, 39999),), "icmp-host-prohibited"),
        ("drop", "eth0", ((22, 22),), ""),
        ("reject", None, ((3000, 3000), (4000, 4000)), "tcp-reset")]
    assert [r.text[:24] for r in firewall.matching(rules, "docker0", 31234)] == ["-A INPUT -i docker0 -p t"]
    assert firewall.matching(rules, "br-1a2b", 31234) == []  # another bridge, another path
    assert [r.resets for r in firewall.matching(rules, "br-1a2b", 4000)] == [True]


def test_the_first_rule_a_connect_meets_decides_as_in_the_kernel() -> None:
    """An accept ahead of a reject lets that traffic through; one for established connections
    only does not; the policy comes last."""
    rules = firewall.parse_iptables("""-P INPUT DROP
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i docker0 -p tcp -m tcp --dport 3000 -j ACCEPT
-A INPUT -i docker0 -j REJECT --reject-with icmp-host-prohibited
""")
    assert firewall.matching(rules, "docker0", 3000) == []
    assert [r.reject_with for r in firewall.matching(rules, "docker0", 31000)] == ["icmp-host-prohibited"]
    assert [(r.policy, r.text) for r in firewall.matching(rules, "br-9", 3000)] == [(True, "-P INPUT DROP")]
    nft = firewall.parse_nft("""table inet f {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "docker0" tcp dport 3000 accept
	}
}
""")
    assert firewall.matching(nft, "docker0", 3000) == []
    assert [r.policy for r in firewall.matching(nft, "docker0", 31000)] == [True]


def test_nft_rules_of_input_hooks_are_read_and_iptables_nfts_own_tables_left_to_iptables() -> None:
    rules = firewall.parse_nft(NFT)
    assert [(r.chain, r.action, r.iface, r.ports, r.reject_with) for r in rules] == [
        ("inet firewalld_like input", "reject", "br-*", ((8000, 8000), (40000, 50000)), "tcp-reset"),
        ("inet firewalld_like input", "drop", "!lo", ((5432, 5432),), "")]
    assert [r.action for r in firewall.matching(rules, "br-77", 45000)] == ["reject"]
    assert firewall.matching(rules, "docker0", 45000) == []
    assert [r.action for r in firewall.matching(rules, "docker0", 5432)] == ["drop"]


def probe(**kw: object) -> NetProbe:
    base: dict[str, object] = {"where": "app (network default)", "host": "host.docker.internal", "port": 30001,
                               "dns": "ok", "addresses": ["172.17.0.1"]}
    base.update(kw)
    return NetProbe(**base)  # type: ignore[arg-type]


def obs(**kw: object) -> Observation:
    base: dict[str, object] = {"t": 3.0, "app_status": "running", "runtime_status": "running"}
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


REJECT = firewall.parse_iptables(IPTABLES)[0]
RESET = firewall.parse_iptables(IPTABLES)[2]


def test_an_icmp_reject_is_a_rejection_on_the_first_probe_with_the_rule_quoted() -> None:
    p = probe(tcp="unreachable", error="[Errno 113] No route to host")
    d = Judge().add(obs(app_probe=p, self_probe=probe(where="runtime", tcp="refused"), app_rules=[REJECT]))
    assert d is not None and (d.cause, d.direction) == ("connection-rejected", "app->runtime")
    assert "ICMP unreachable answered the SYN ([Errno 113] No route to host)" in d.why
    assert "iptables -A INPUT -i docker0 -p tcp -m tcp --dport 30000:39999" in d.why
    unread = Judge().add(obs(app_probe=p, app_rules=None))
    assert unread is not None and unread.cause == "connection-rejected" and "were not read" in unread.why


def test_a_reset_while_the_target_listens_is_a_rejection_only_with_a_resetting_rule() -> None:
    refused, listening = probe(tcp="refused"), probe(where="runtime", tcp="open")
    d = Judge().add(obs(app_probe=refused, self_probe=listening, app_rules=[RESET]))
    assert d is not None and d.cause == "connection-rejected" and "refused by the host firewall, not by the target" in d.why
    assert "answers it with a TCP reset: iptables -A INPUT -p tcp -m multiport --dports 3000,4000" in d.why
    assert "the runtime listens on its own port" in d.why
    booting = Judge().add(obs(app_probe=refused, self_probe=probe(where="runtime", tcp="refused"), app_rules=[RESET]))
    assert booting is not None and booting.cause == "connection-rejected"  # the rule resets before any socket
    # no such rule: nothing listens where the app knocks, proven by a second refusal as before
    j = Judge()
    assert j.add(obs(app_probe=refused, self_probe=listening, app_rules=[REJECT])) is None
    second = j.add(obs(app_probe=refused, self_probe=listening, app_rules=[REJECT]))
    assert second is not None and second.cause == "connection-refused"


def test_a_drop_while_the_target_listens_is_decided_on_one_timeout_with_the_rule() -> None:
    drop = firewall.Rule("-A INPUT -i docker0 -j DROP", "iptables", "INPUT", "drop", iface="docker0")
    d = Judge().add(obs(app_probe=probe(tcp="timeout"), self_probe=probe(where="runtime", tcp="open"),
                        app_rules=[drop]))
    assert d is not None and d.cause == "connect-timeout" and "while the target listens" in d.why
    assert "-A INPUT -i docker0 -j DROP" in d.why
    # the target not up yet: three in a row, as before
    j = Judge()
    booting = probe(where="runtime", tcp="refused")
    assert [j.add(obs(app_probe=probe(tcp="timeout"), self_probe=booting)) is None for _ in range(2)] == [True, True]
    assert j.add(obs(app_probe=probe(tcp="timeout"), self_probe=booting)) is not None


# -- every kind of reject, in each front end, as the kernel answers it and the judge names it ----

# (iptables' name, nft 1.0's listing of it, what a TCP connect then gets): measured on Linux 6.1
# with iptables 1.8.9 (legacy and nf_tables print the same `-S`) and nft 1.0.6, each rule on lo
# in a network namespace of its own.
KINDS = [
    ("icmp-port-unreachable", "reject", "refused", None),
    ("icmp-net-unreachable", "reject with icmp net-unreachable", "unreachable", "[Errno 101] Network is unreachable"),
    ("icmp-host-unreachable", "reject with icmp host-unreachable", "unreachable", "[Errno 113] No route to host"),
    ("icmp-proto-unreachable", "reject with icmp prot-unreachable", "unreachable", "[Errno 92] Protocol not available"),
    ("icmp-net-prohibited", "reject with icmp net-prohibited", "unreachable", "[Errno 101] Network is unreachable"),
    ("icmp-host-prohibited", "reject with icmp host-prohibited", "unreachable", "[Errno 113] No route to host"),
    ("icmp-admin-prohibited", "reject with icmpx admin-prohibited", "unreachable", "[Errno 113] No route to host"),
    ("tcp-reset", "reject with tcp reset", "refused", None),
]
SENDS = {"icmp-port-unreachable": "an ICMP port unreachable", "icmp-net-unreachable": "an ICMP net unreachable",
         "icmp-host-unreachable": "an ICMP host unreachable", "icmp-proto-unreachable": "an ICMP protocol unreachable",
         "icmp-net-prohibited": "an ICMP net prohibited", "icmp-host-prohibited": "an ICMP host prohibited",
         "icmp-admin-prohibited": "an ICMP administratively prohibited", "tcp-reset": "a TCP reset"}


def ruleset(front: str, kind: str, nft_says: str, match: str = "") -> list[firewall.Rule]:
    """One reject of `kind` on docker0's NEW connections to V0's runtime ports, as `front` prints it."""
    if front == "iptables-save":  # every table: a nat INPUT's accept must not let the connect through
        return firewall.parse_iptables(
            "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
            "-A INPUT -j ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n"
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
            f"-A INPUT -i docker0 -p tcp -m tcp --dport 30000:39999{match} -m conntrack --ctstate NEW "
            f"-j REJECT --reject-with {kind}\nCOMMIT\n")
    if front.startswith("iptables"):  # both front ends print `--reject-with` even for a plain REJECT
        return firewall.parse_iptables(
            "-P INPUT ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
            f"-A INPUT -i docker0 -p tcp -m tcp --dport 30000:39999{match} -m conntrack --ctstate NEW "
            f"-j REJECT --reject-with {kind}\n")
    family = front.split()[1]
    return firewall.parse_nft(
        f"table {family} fw {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n"
        f"\t\tct state established,related accept\n"
        f'\t\tiifname "docker0" tcp dport 30000-39999{match} ct state new counter packets 3 bytes 180 {nft_says}\n'
        "\t}\n}\n")


FRONTS = ["iptables-legacy", "iptables-nft", "iptables-save", "nft inet", "nft ip"]


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize(("kind", "nft_says", "tcp", "error"), KINDS, ids=[k[0] for k in KINDS])
def test_each_reject_kind_is_named_with_its_rule_on_the_first_probe_whether_the_target_listens_or_not(
        front: str, kind: str, nft_says: str, tcp: str, error: str | None) -> None:
    found = firewall.matching(ruleset(front, kind, nft_says), "docker0", 30001, "172.17.0.2", "172.17.0.1")
    assert [(r.action, r.reject_with, r.sure) for r in found] == [("reject", kind, True)]
    for runtime, said in ((probe(where="runtime", tcp="refused"), "the runtime does not listen on its own port yet"),
                          (probe(where="runtime", tcp="open"), "the runtime listens on its own port"),
                          (None, "the runtime's own port was not looked at")):
        d = Judge().add(obs(app_probe=probe(tcp=tcp, error=error), self_probe=runtime, app_rules=found))
        assert d is not None, (front, kind, said)
        assert (d.verdict, d.cause, d.direction) == ("fail", "connection-rejected", "app->runtime"), d
        assert d.why.startswith("app -> runtime: the connect to host.docker.internal:30001 (172.17.0.1) from the app")
        assert f"answers it with {SENDS[kind]}" in d.why and found[0].text in d.why and said in d.why, d.why
        if tcp == "refused":
            assert "refused by the host firewall, not by the target" in d.why, d.why


def test_a_plain_reject_is_the_port_unreachable_default_in_every_front_end() -> None:
    """`-j REJECT` as written (and as an older `iptables -S` might print it), nft's `reject` in
    an inet or an ip table, and nft 0.9's `with icmp type` listing: the default answer, which a
    caller sees as "connection refused"."""
    plain = firewall.parse_iptables("-A INPUT -i docker0 -j REJECT\n")
    nft = firewall.parse_nft("table ip fw {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
                             '  iifname "docker0" reject\n  reject with icmp type host-prohibited\n'
                             "  reject with icmpx type no-route\n }\n}\n")
    assert [(r.reject_with, r.fails_with) for r in plain + nft] == [
        ("icmp-port-unreachable", 111), ("icmp-port-unreachable", 111), ("icmp-host-prohibited", 113),
        ("icmp-net-unreachable", 101)]
    assert "what a reject sends unless told otherwise" in plain[0].sends
    d = Judge().add(obs(app_probe=probe(tcp="refused"), self_probe=probe(where="runtime", tcp="refused"),
                        app_rules=firewall.matching(plain, "docker0", 30001, "172.17.0.2", "172.17.0.1")))
    assert d is not None and d.cause == "connection-rejected" and "-A INPUT -i docker0 -j REJECT" in d.why


def test_a_callback_the_firewall_refuses_is_named_with_its_direction() -> None:
    rule = ruleset("iptables-nft", "icmp-port-unreachable", "reject")
    cb = probe(where="sandbox (network bridge)", port=3000, tcp="refused")
    d = Judge().add(obs(app_probe=probe(tcp="open"), self_probe=probe(where="runtime", tcp="open"), callback_probe=cb,
                        callback_rules=firewall.matching(rule, "docker0", 35000, "172.17.0.3", "172.17.0.1")))
    assert d is not None and (d.cause, d.direction) == ("connection-rejected", "sandbox->app"), d
    assert d.why.startswith("sandbox -> app (callback): the connect to host.docker.internal:3000")
    assert "an ICMP port unreachable" in d.why and "the app listens" in d.why


def test_a_refusal_no_rule_explains_is_refused_while_the_target_listens_as_before() -> None:
    """A reject that answers otherwise (an ICMP host prohibited cannot be a refusal), one on
    another port or bridge, none read: the refusal is the target's, proven by the streak."""
    elsewhere = [*ruleset("iptables-nft", "icmp-host-prohibited", ""), *firewall.parse_iptables(
        "-A INPUT -i br+ -p tcp -j REJECT --reject-with tcp-reset\n-A INPUT -i docker0 -p tcp --dport 22 -j REJECT\n")]
    for rules in (firewall.matching(elsewhere, "docker0", 30001, "172.17.0.2", "172.17.0.1"), [], None):
        j, listening = Judge(), probe(where="runtime", tcp="open")
        assert j.add(obs(app_probe=probe(tcp="refused"), self_probe=listening, app_rules=rules)) is None
        d = j.add(obs(app_probe=probe(tcp="refused"), self_probe=listening, app_rules=rules))
        assert d is not None and d.cause == "connection-refused"
        assert d.why == "app -> runtime: host.docker.internal:30001 refused while the target listens"


@pytest.mark.parametrize("front", FRONTS)
def test_an_accept_ahead_of_the_reject_wins_and_one_behind_it_does_not(front: str) -> None:
    reject = ruleset(front, "icmp-port-unreachable", "reject")
    if front.startswith("iptables"):
        accept = firewall.parse_iptables("-A INPUT -s 172.17.0.0/16 -i docker0 -p tcp -m multiport "
                                         "--dports 3000,30000:30009 -m state --state NEW -j ACCEPT\n")
    else:
        accept = firewall.parse_nft(f"table {front.split()[1]} fw {{\n chain input {{\n  type filter hook input priority "
                                    'filter; policy accept;\n  iifname "docker0" ip saddr 172.17.0.0/16 '
                                    "tcp dport { 3000, 30000-30009 } ct state new accept\n }\n}\n")
    ahead = [*accept, *reject] if front.startswith("iptables") else [
        *accept, *[dataclasses.replace(r, chain=accept[0].chain) for r in reject]]
    assert firewall.matching(ahead, "docker0", 30001, "172.17.0.2", "172.17.0.1") == []
    assert len(firewall.matching(ahead, "docker0", 30011, "172.17.0.2", "172.17.0.1")) == 1  # not its ports
    assert len(firewall.matching(ahead, "docker0", 30001, "10.9.0.2", "172.17.0.1")) == 1  # not its source
    behind = [*reject, *(dataclasses.replace(r, chain=reject[0].chain) for r in accept)]
    assert [r.action for r in firewall.matching(behind, "docker0", 30001, "172.17.0.2", "172.17.0.1")] == ["reject"]
    # refused with an accept ahead: the target's refusal, not the firewall's
    j, listening = Judge(), probe(where="runtime", tcp="open")
    first = firewall.matching(ahead, "docker0", 30001, "172.17.0.2", "172.17.0.1")
    assert j.add(obs(app_probe=probe(tcp="refused"), self_probe=listening, app_rules=first)) is None


def test_which_rules_meet_the_path_from_a_bridge_to_the_host() -> None:
    rules = firewall.parse_iptables("""-P INPUT ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -m state --state ESTABLISHED -j REJECT
-A INPUT -s 10.0.0.0/8 -p tcp -j REJECT
-A INPUT -d 172.18.0.1/32 -p tcp -j REJECT
-A INPUT -p udp -j REJECT
-A INPUT ! -p tcp -j REJECT
-A INPUT -i docker0 -p tcp -m tcp ! --dport 22 -m tcp --syn -j REJECT --reject-with tcp-reset
""")
    assert [r.text for r in rules][:1] == ["-A INPUT -s 10.0.0.0/8 -p tcp -j REJECT"]  # no NEW connection meets the first two
    found = firewall.matching(rules, "docker0", 30001, "172.17.0.2", "172.17.0.1")
    assert [r.reject_with for r in found] == ["tcp-reset"]
    assert firewall.matching(rules, "docker0", 22, "172.17.0.2", "172.17.0.1") == []
    assert [r.text for r in firewall.matching(rules, "docker0", 22, "10.1.2.3", "172.17.0.1")] == [
        "-A INPUT -s 10.0.0.0/8 -p tcp -j REJECT"]
    # addresses not known (the doctor, the remedy's context): a rule limited by one may meet it
    unknown = firewall.matching(rules, "docker0", 22)
    assert [(r.text, r.sure) for r in unknown] == [("-A INPUT -s 10.0.0.0/8 -p tcp -j REJECT", False)]
    nft = firewall.parse_nft("""table inet fw {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state invalid drop
		iif "docker0" udp dport 53 drop
		ip6 saddr ::1 reject with icmpv6 admin-prohibited
		reject with icmpv6 port-unreachable
		iifname { "br-*", "docker0" } ip saddr 172.17.0.0/16 ip daddr != 10.0.0.1 tcp dport != 22 meta l4proto tcp reject with icmp host-prohibited
	}
}
""")
    assert [r.reject_with for r in firewall.matching(nft, "docker0", 30001, "172.17.0.2", "172.17.0.1")] == [
        "icmp-host-prohibited"]
    assert firewall.matching(nft, "docker0", 22, "172.17.0.2", "172.17.0.1") == []
    assert firewall.matching(nft, "docker0", 30001, "172.17.0.2", "10.0.0.1") == []
    assert firewall.matching(nft, "eth0", 30001, "172.17.0.2", "172.17.0.1") == []


def test_a_refusal_a_rule_may_explain_is_not_blamed_on_it_but_said() -> None:
    """A reject with a match the reading does not weigh (an ipset), or an accept it cannot
    weigh ahead of it: the refusal waits for the streak, and the verdict says which rule may
    have answered; an ICMP answer is still proof, with the doubt said."""
    ipset = firewall.parse_iptables("-A INPUT -i docker0 -p tcp -m set --match-set blocked src -j REJECT\n")
    limited = firewall.parse_iptables("-A INPUT -i docker0 -p tcp -m limit --limit 5/min -j ACCEPT\n"
                                      "-A INPUT -i docker0 -p tcp -j REJECT --reject-with icmp-host-prohibited\n")
    assert [r.unweighed for r in ipset] == [("-m set", "--match-set")]
    for rules in (ipset, limited):
        found = firewall.matching(rules, "docker0", 30001, "172.17.0.2", "172.17.0.1")
        assert [r.sure for r in found] == [False]
    found = firewall.matching(ipset, "docker0", 30001, "172.17.0.2", "172.17.0.1")
    j, listening = Judge(), probe(where="runtime", tcp="open")
    assert j.add(obs(app_probe=probe(tcp="refused"), self_probe=listening, app_rules=found)) is None
    d = j.add(obs(app_probe=probe(tcp="refused"), self_probe=listening, app_rules=found))
    assert d is not None and d.cause == "connection-refused" and "may have answered it instead" in d.why
    assert "cannot tell for sure that it meets the connect: -m set, --match-set" in d.why
    icmp = Judge().add(obs(app_probe=probe(tcp="unreachable", error="[Errno 113] No route to host"),
                           app_rules=firewall.matching(limited, "docker0", 30001, "172.17.0.2", "172.17.0.1")))
    assert icmp is not None and icmp.cause == "connection-rejected" and "an accept it cannot weigh comes first" in icmp.why


def test_iptables_save_is_read_by_its_filter_table_and_its_policy_line() -> None:
    """`iptables-save` prints every table: the filter table's INPUT is the one that stops a
    connect (a mangle or nat INPUT's rules never do), and its policy is `:INPUT DROP [0:0]`."""
    text = ("*mangle\n:INPUT ACCEPT [0:0]\n-A INPUT -i docker0 -j DROP\nCOMMIT\n"
            "*filter\n:INPUT DROP [12:720]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A INPUT -i docker0 -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -i docker0 -p tcp -j REJECT\nCOMMIT\n")
    rules = firewall.parse_iptables(text)
    assert [(r.action, r.policy, r.reject_with) for r in rules] == [
        ("accept", False, ""), ("reject", False, "icmp-port-unreachable"), ("drop", True, "")]
    assert firewall.matching(rules, "docker0", 22) == []
    assert [r.text for r in firewall.matching(rules, "docker0", 30001)] == ["-A INPUT -i docker0 -p tcp -j REJECT"]
    assert [r.text for r in firewall.matching(rules, "eth0", 30001)] == [":INPUT DROP [12:720]"]


# -- which chain a connect from a bridge to this host meets: Docker's nat DOCKER chain -----------

# `iptables -t nat -S DOCKER` on Docker 20.10 with a user-defined network br-7c83455054d6 and a
# container on docker0 publishing 8000 on host port 32768 (and one on 127.0.0.1 only, 32770):
# with the userland proxy (RETURN for each bridge first) and without it (no RETURN: hairpin NAT).
NAT_PROXY = """-N DOCKER
-A DOCKER -i br-7c83455054d6 -j RETURN
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:8000
-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 32770 -j DNAT --to-destination 172.17.0.3:8000
"""
NAT_NO_PROXY = """-N DOCKER
-A DOCKER -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:8000
-A DOCKER -d 127.0.0.1/32 -p tcp -m tcp --dport 32770 -j DNAT --to-destination 172.17.0.3:8000
"""


def view(nat: str | None) -> watch.FirewallView:
    v = watch.FirewallView(None)  # type: ignore[arg-type]  # no daemon asked: the nat chain is given
    v.nat = None if nat is None else firewall.parse_nat(nat)
    return v


def test_the_userland_proxys_return_sends_any_bridges_connects_to_input() -> None:
    """With the proxy, a user-defined network's connect to a published port on this host meets
    INPUT (its bridge's RETURN comes first), as docker0's does: a reject there is that
    network's too. Without it, the port's DNAT takes it to the container (FORWARD)."""
    proxy, no_proxy = view(NAT_PROXY), view(NAT_NO_PROXY)
    for bridge in ("docker0", "br-7c83455054d6"):
        assert proxy.meets_input(bridge, 32768, "127.0.0.1"), bridge
        assert not no_proxy.meets_input(bridge, 32768, "127.0.0.1"), bridge
        assert no_proxy.meets_input(bridge, 40000, "127.0.0.1"), bridge  # no port published there: a local socket's
    # a network the daemon has no RETURN for (another daemon's bridge): the DNAT's
    assert not proxy.meets_input("br-other", 32768, "127.0.0.1")
    # published on 127.0.0.1 only: a connect to another local address meets no DNAT
    assert proxy.meets_input("br-other", 32770, "127.0.0.2") and not proxy.meets_input("br-other", 32770, "127.0.0.1")
    [hit] = [r for r in firewall.parse_nat(NAT_NO_PROXY) if r.meets("docker0", 32768, None)]
    assert (hit.target, hit.to) == ("DNAT", "172.17.0.2:8000")
    # unread: the default bridge only, as the proxy sets it up; the host network always
    assert view(None).meets_input("docker0", 32768, None) and not view(None).meets_input("br-x", 32768, None)
    assert view(NAT_NO_PROXY).meets_input("lo", 32768, "127.0.0.1")


def test_a_container_address_never_meets_input() -> None:
    assert not view(NAT_PROXY).meets_input("docker0", 8000, "192.0.2.7")  # TEST-NET-1: never this machine's
    assert firewall.local("127.0.0.1") and not firewall.local("192.0.2.7")


# -- a connect the daemon NATs to another bridge: its FORWARD path (--userland-proxy=false) ------

# `iptables -S` on Docker 20.10 with --userland-proxy=false, a cell network br-7c83455054d6 and
# a runtime on docker0 publishing 8000 (its DNAT: NAT_NO_PROXY above).
FILTER = """-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o br-7c83455054d6 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o br-7c83455054d6 -j DOCKER
-A FORWARD -i br-7c83455054d6 ! -o br-7c83455054d6 -j ACCEPT
-A FORWARD -i br-7c83455054d6 -o br-7c83455054d6 -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 8000 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i br-7c83455054d6 ! -o br-7c83455054d6 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o br-7c83455054d6 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
"""


def test_a_connect_natted_across_bridges_meets_the_daemons_isolation_drop() -> None:
    chains = firewall.parse_filter(FILTER)
    across = firewall.forward_stop(chains, "DROP", "br-7c83455054d6", "docker0", "172.18.0.2", "172.17.0.2", 8000)
    assert across is not None and (across.text, across.action, across.sure) == (
        "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP", "drop", True)
    # on one bridge (the remedy: the app on the runtime's network) the daemon accepts it
    assert firewall.forward_stop(chains, "DROP", "docker0", "docker0", "172.17.0.3", "172.17.0.2", 8000) is None
    # a user's own DOCKER-USER rule comes first, and one it cannot weigh makes the rest unsure
    own = firewall.parse_filter(FILTER.replace("-A DOCKER-USER -j RETURN",
                                               "-A DOCKER-USER -i br-+ -p tcp -j REJECT --reject-with tcp-reset"))
    reset = firewall.forward_stop(own, "DROP", "br-7c83455054d6", "docker0", None, "172.17.0.2", 8000)
    assert reset is not None and (reset.action, reset.reject_with) == ("reject", "tcp-reset")
    odd = firewall.parse_filter(FILTER.replace("-A DOCKER-USER -j RETURN", "-A DOCKER-USER -m set --match-set x src -j ACCEPT"))
    unsure = firewall.forward_stop(odd, "DROP", "br-7c83455054d6", "docker0", None, "172.17.0.2", 8000)
    assert unsure is not None and not unsure.sure and unsure.unweighed == ("-m set", "--match-set")
    # nothing accepts, nothing drops: the chain's policy
    bare = firewall.parse_filter("-A FORWARD -i eth0 -j ACCEPT\n")
    policy = firewall.forward_stop(bare, "DROP", "br-1", "docker0", None, "172.17.0.2", 8000)
    assert policy is not None and policy.policy and policy.text == "-P FORWARD DROP"
    assert firewall.forward_stop(bare, "ACCEPT", "br-1", "docker0", None, "172.17.0.2", 8000) is None


def test_a_timeout_across_bridges_is_decided_with_the_daemons_rule_and_its_nat() -> None:
    """--userland-proxy=false: the custom-network app's connects to the runtime's published port
    are DNATed to docker0 and dropped by the daemon's isolation; the evidence quotes both."""
    v = view(NAT_NO_PROXY)
    v.read, v.rules, v.forward = True, [], (firewall.parse_filter(FILTER), "DROP")
    v.subnets = [(ipaddress.ip_network("172.17.0.0/16"), "docker0"), (ipaddress.ip_network("172.18.0.0/16"), "br-7c83455054d6")]
    nat = firewall.dnat(v.nat or [], "br-7c83455054d6", 32768, "127.0.0.1")
    assert nat is not None
    found = v.forwarded("br-7c83455054d6", "172.18.0.2", nat)
    assert found is not None and [r.chain for r in found] == ["DOCKER-ISOLATION-STAGE-2"]
    d = Judge().add(obs(app_probe=probe(tcp="timeout", port=32768), self_probe=probe(where="runtime", tcp="open"),
                        app_rules=found))
    assert d is not None and (d.cause, d.direction) == ("connect-timeout", "app->runtime"), d
    assert "iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP" in d.why, d.why
    assert "iptables -t nat -A DOCKER -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:8000" in d.why
    assert "userland proxy is off" in d.why
    assert v.forwarded("br-7c83455054d6", None, firewall.NatRule("x", "DNAT", to="10.99.0.2:8000")) is None  # no bridge of its
