"""The host firewall as the diagnosis reads it: iptables and nftables rules on the INPUT path,
which of them meets a connect from a bridge, and the decisions they support."""

from __future__ import annotations

import pytest

from harness.cells.diagnosis import Judge, Observation
from harness.host import firewall
from harness.host.netprobe import NetProbe

pytestmark = pytest.mark.unit
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
    assert d is not None and d.cause == "connection-rejected" and "reset by the host firewall" in d.why
    assert "tcp-reset" in d.why
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
