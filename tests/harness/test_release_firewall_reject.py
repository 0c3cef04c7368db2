"""A firewall that rejects instead of dropping, on the real releases, in one run: two INPUT
rules on NEW connections from the bridge, made for this test and removed after. Ahead, a
plain `-j REJECT` (iptables' default answer, an ICMP port unreachable, which a caller sees as
"connection refused") on V0's runtime ports, 30000-39999; behind it, the rule some cloud
images end with (`REJECT --reject-with icmp-host-prohibited`) on those and the ephemeral range,
where a 1.x app's sandbox ports come from (so 1.x meets the plain one when its port falls in
32768-39999, the other otherwise). Both releases must be `connection-rejected` within seconds,
no later than their runtime is up, with the rule that answered quoted and what it sends back,
never a timeout, a `connection-refused` or OpenHands' own error after its wait, and the
firewall-accept remedy proven by a rerun and undone. (The `tcp-reset` variant and the figures
per release: by hand, see the note.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import clirun
import docker
import pytest

from harness import generations
from harness.host import cleanup, firewall
from harness.model import ImageSet
from harness.paths import cache_root

pytestmark = [pytest.mark.engine, pytest.mark.release]
ROOT = Path(__file__).resolve().parents[2]
DECIDED = 10.0
MATRIX = clirun.matrix("host-gateway", tasks=())


@pytest.mark.alone  # REJECT rules on docker0, and the accept remedy: no other release test meanwhile (hostturn.py)
def test_a_rejecting_firewall_is_named_with_its_rule_and_the_accept_rule_proven(
        client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet, tmp_path: Path) -> None:
    (tmp_path / "matrix.toml").write_text(MATRIX)
    low, high = (generations.V0.runtime_host_ports or "").split(":")
    ports = f"{low}:{firewall.ephemeral_ports().split(':')[1]}"
    out = tmp_path / "run"
    # `-I` puts each rule first: the plain one, made last, comes ahead of the wide one.
    with firewall.reject_bridge_to_host(ports) as wide, firewall.reject_bridge_to_host(f"{low}:{high}", None) as plain:
        run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "matrix.toml"),
                          "--backend", "pypi", "--remedies", "--remedy", "firewall-accept", "--out", str(out),
                          "-n", "2"],
                         cwd=ROOT, timeout=1500, env={**os.environ, "OH_MATRIX_CACHE": str(cache_root())})
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}
    for cid in ("0.62-host-gateway", "1.11-host-gateway"):
        c = cells[cid]["connect"]
        assert (c["verdict"], c["cause"]) == ("fail", "connection-rejected"), (cid, c)
        assert c["seconds"] is not None and c["seconds"] <= DECIDED, (cid, c["seconds"])
        why = c["evidence"][0]["text"]
        knocked = re.search(r"the connect to \S+:(\d+) ", why)
        assert knocked, why
        if int(low) <= int(knocked[1]) <= int(high):  # the plain REJECT's ports
            assert "was refused by the host firewall, not by the target" in why, why
            assert "answers it with an ICMP port unreachable" in why, why
            # the rule, quoted as iptables prints it: a plain REJECT with its default answer
            assert f"--dport {low}:{high} " in why and "-j REJECT --reject-with icmp-port-unreachable" in why, why
        else:
            assert "an ICMP unreachable answered the SYN" in why and "No route to host" in why, why
            assert "answers it with an ICMP host prohibited" in why, why
            assert f"--dport {ports}" in why and "icmp-host-prohibited" in why, why
        assert "the runtime" in why.split("; ")[-1] and "own port" in why.split("; ")[-1], why  # listened or not
        tried = {r["name"]: r for r in cells[cid]["remedies"]}
        accept = tried["firewall-accept"]
        assert accept["verdict"] == "pass" and accept["asks"] == 2, accept
        assert "iptables -I INPUT -i docker0 -p tcp" in accept["host_change"], accept
    assert cells["0.62-host-gateway"]["connect"]["direction"] == "app->runtime"
    assert "ICMP port unreachable" in cells["0.62-host-gateway"]["connect"]["evidence"][0]["text"]
    # the host as it was: only the test's own rule was there, and it is gone now too
    left = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    assert firewall.COMMENT not in left and " ".join(wide[1:4]) not in left and " ".join(plain[1:4]) not in left, left
    assert not client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"})
    print(json.dumps({k: (v["connect"]["cause"], v["connect"]["direction"], v["connect"]["seconds"],
                          [(r["name"], r["verdict"], r["seconds"]) for r in v["remedies"]])
                      for k, v in cells.items()}, indent=1))
