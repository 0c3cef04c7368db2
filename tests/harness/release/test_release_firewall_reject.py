"""A firewall that rejects instead of dropping, on the real releases: INPUT rules on NEW TCP
connections from the bridge, each made for one run and removed after, on a daemon of the
test's own (a second dockerd in a network namespace of its own, remotedaemon.own_daemon, the
harness run inside that namespace): its docker0 and its INPUT chain carry the test's cells
only, so no rule here meets anyone else's traffic on this machine's daemon.

Three runs, one reject each, whatever it sends back: a plain `-j REJECT` (iptables' default
answer, an ICMP port unreachable, which a caller sees as "connection refused"), with the
firewall-accept remedy; a `--reject-with tcp-reset` (also a refusal to the caller); and the
rule some cloud images end with (`--reject-with icmp-host-prohibited`, "No route to host").
Both releases must be `connection-rejected` within seconds, no later than their runtime is
up, with the rule that answered quoted as iptables prints it and what it sends back, never a
timeout, a `connection-refused` or OpenHands' own error after its wait; the accept rule is
proven by a rerun and undone."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import docker
import pytest
import remotedaemon
import rootless

from harness.host import firewall
from harness.model import ImageSet
from harness.paths import cache_root

ROOT = Path(__file__).resolve().parents[3]
DECIDED = 10.0
CELLS = ("0.62-host-gateway", "1.11-host-gateway")
MATRIX = clirun.matrix("host-gateway", tasks=())
NEW_FROM_BRIDGE = ["-i", "docker0", "-p", "tcp", "-m", "conntrack", "--ctstate", "NEW", "-m", "comment",
                   "--comment", firewall.COMMENT]
# (--reject-with, or None for a plain REJECT; what the caller's connect gets; the words for what it sends)
KINDS = {
    "plain": (None, "refused", "an ICMP port unreachable"),
    "tcp-reset": ("tcp-reset", "refused", "a TCP reset"),
    "host-prohibited": ("icmp-host-prohibited", "unreachable", "an ICMP host prohibited"),
}


@pytest.fixture(scope="module")
def own(client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
        base_image: object) -> Iterator[remotedaemon.OwnDaemon]:
    images = rootless.harness_images(client, v0_images, v1_images)
    with remotedaemon.own_daemon() as d:
        rootless.load_images(d.docker_host, *images)
        yield d


def _run(own: remotedaemon.OwnDaemon, out: Path, matrix: Path, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "DOCKER_HOST": own.docker_host, "OH_MATRIX_CACHE": str(cache_root())}
    run = clirun.run(own.wrap([sys.executable, "-m", "harness.cli", "run", "--matrix", str(matrix),
                               "--backend", "pypi", "--out", str(out), "-n", "2", *extra]),
                     cwd=ROOT, timeout=1500, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_reject_is_named_with_its_rule_within_seconds(own: remotedaemon.OwnDaemon, tmp_path: Path,
                                                            kind: str) -> None:
    reject_with, tcp, sends = KINDS[kind]
    (tmp_path / "matrix.toml").write_text(MATRIX)
    remedy = ["--remedies", "--remedy", "firewall-accept"] if kind == "plain" else []
    answer = ["--reject-with", reject_with] if reject_with else []
    with own.rule(*NEW_FROM_BRIDGE, "-j", "REJECT", *answer) as printed:
        assert printed.endswith(f"-j REJECT --reject-with {reject_with or firewall.DEFAULT_REJECT}"), printed
        data = _run(own, tmp_path / "run", tmp_path / "matrix.toml", *remedy)
    cells = {c["id"]: c for c in data["cells"]}
    assert sorted(cells) == sorted(CELLS)
    for cid in CELLS:
        c = cells[cid]["connect"]
        assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "connection-rejected", "app->runtime"), (cid, c)
        assert c["seconds"] is not None and c["seconds"] <= DECIDED, (cid, c["seconds"])
        why = c["evidence"][0]["text"]
        assert re.search(r"the connect to host\.docker\.internal:\d+ \(10\.214\.0\.1\) from the app", why), why
        if tcp == "refused":
            assert "was refused by the host firewall, not by the target" in why, why
        else:
            assert "an ICMP unreachable answered the SYN" in why and "No route to host" in why, why
        assert f"answers it with {sends}" in why and f"iptables {printed}" in why, why  # the rule as iptables prints it
        assert "the runtime" in why.split("; ")[-1] and "own port" in why.split("; ")[-1], why  # listened or not
        if kind == "plain":
            [accept] = cells[cid]["remedies"]
            assert accept["name"] == "firewall-accept" and accept["verdict"] == "pass", accept
            assert "iptables -I INPUT -i docker0 -p tcp" in accept["host_change"], accept
    # the namespace as it was: the test's rule is gone, and no rule of the harness's is left
    left = own.iptables("-S", "INPUT").stdout
    assert firewall.COMMENT not in left, left
    assert own.client().containers.list(all=True) == []
    print(kind, json.dumps({k: (v["connect"]["cause"], v["connect"]["seconds"], v["connect"]["evidence"][0]["text"],
                                [(r["name"], r["verdict"], r["seconds"]) for r in v["remedies"]])
                            for k, v in cells.items()}, indent=1))
