"""A daemon with `--userland-proxy=false` as a host fact (#42, item 2), on the real releases: a
second dockerd started so, in a network namespace of the test's own (remotedaemon.own_daemon),
the harness run inside that namespace so it reads the daemon's own rules.

On Docker up to 28 (20.10 here) such a daemon NATs a connect from one bridge network to a port
published by a container on another straight to that container, and its own isolation rules
drop it between the two bridges (moby PR #49981 removed them in 29.0). The custom-network
cells (the app on a network of its own, its runtime on the default bridge) must be
`connect-timeout`, decided once the runtime listens, with the daemon's dropping rule and the
DNAT that sent the connect there quoted; the host-gateway cells (app and runtime on one
bridge) pass; the remedy, the app on the runtime's network, is proven by a rerun; the run's
host facts and `doctor` name the setting."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import clirun
import docker
import pytest
import remotedaemon
import rootless

from harness.model import ImageSet
from harness.paths import cache_root

ROOT = Path(__file__).resolve().parents[3]
MATRIX = clirun.matrix("custom-network", "host-gateway", tasks=())


@pytest.fixture(scope="module")
def own(client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
        base_image: object) -> Iterator[remotedaemon.OwnDaemon]:
    with rootless.loaded(remotedaemon.own_daemon(userland_proxy=False), client, v0_images, v1_images) as d:
        yield d


def test_cells_across_bridges_are_dropped_by_the_daemons_own_rule_and_the_sandbox_network_proven(
        own: remotedaemon.OwnDaemon, tmp_path: Path) -> None:
    (tmp_path / "matrix.toml").write_text(MATRIX)
    out = tmp_path / "run"
    env = {**os.environ, "DOCKER_HOST": own.docker_host, "OH_MATRIX_CACHE": str(cache_root())}
    run = clirun.run(own.wrap([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "matrix.toml"),
                               "--backend", "pypi", "--remedies", "--remedy", "sandbox-network", "--out", str(out),
                               "-n", "2"]), cwd=ROOT, timeout=1800, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # the custom-network cells fail
    data = json.loads((out / "results.json").read_text())
    assert data["host"]["userland_proxy"] == "off", data["host"]
    cells = {c["id"]: c for c in data["cells"]}
    for tag in ("0.62", "1.11"):
        assert cells[f"{tag}-host-gateway"]["connect"]["verdict"] == "pass", cells[f"{tag}-host-gateway"]["connect"]
        c = cells[f"{tag}-custom-network"]["connect"]
        assert (c["verdict"], c["cause"]) == ("fail", "connect-timeout"), (tag, c)
        why = c["evidence"][0]["text"]
        # Both ways cross the two bridges: the app's connect to the runtime's port (DNATed to docker0),
        # and 1.x's sandbox calling the app back (DNATed to the cell's network), whichever is seen first
        if c["direction"] == "app->runtime":
            assert "iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP" in why, why  # the daemon's own rule
            assert "-j DNAT --to-destination 10.214.0." in why, why  # to the runtime on docker0
        else:
            assert tag == "1.11" and c["direction"] == "sandbox->app", c
            assert re.search(r"iptables -A DOCKER-ISOLATION-STAGE-2 -o br-[0-9a-f]{12} -j DROP", why), why
            assert "-j DNAT --to-destination 10.215." in why, why  # to the app on the cell's network
        assert "iptables -t nat -A DOCKER -p tcp -m tcp --dport" in why, why
        assert "userland proxy is off" in why, why
        [fix] = cells[f"{tag}-custom-network"]["remedies"]
        assert (fix["name"], fix["mode"], fix["verdict"]) == ("sandbox-network", "host-gateway", "pass"), fix
    doctor = clirun.run(own.wrap([sys.executable, "-m", "harness.cli", "doctor"]), cwd=ROOT, timeout=120, env=env)
    said = doctor.stdout + doctor.stderr
    assert "userland-proxy" in said and "off (the daemon's nat OUTPUT rule" in said, said
    assert own.client().containers.list(all=True) == []
    print(json.dumps({k: (v["connect"]["cause"], v["connect"]["seconds"], v["connect"]["evidence"][0]["text"],
                          [(r["name"], r["verdict"], r["seconds"]) for r in v["remedies"]])
                      for k, v in cells.items()}, indent=1))
