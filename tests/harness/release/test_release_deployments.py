"""Users' own deployments as cells, for real: examples/deployments on 0.62, 1.11 and latest
(Agent Canvas) in one run with --remedies (six of its cells, one of each mechanism, for CI's
minutes; the
whole matrix: `oh-matrix run --matrix examples/deployments/matrix.toml -n 2 --remedies`).
Each verdict is checked for its mechanism, each proven fix against the user's file, and the
run against the user's files and host paths, which it must leave exactly as they were."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import clirun
import docker
from test_secrets_engine import PYTEST_AT_ITS_WORST, leaks

from harness.host import cleanup
from harness.model import ImageSet
from harness.paths import cache_root

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "deployments"
# The fixes the test proves (--remedy), for CI's minutes: the other callback URL fixes of (b)
# are the whole matrix's, by hand.
FIXES = [a for n in ("v1-published-port", "docker-host-addr", "add-host-gateway", "publish-on-gateway",
                     "publish-app-port")
         for a in ("--remedy", n)]
SECRET = "sk-example-not-a-real-key"  # examples/deployments/openhands.env
# a secret of no telling name, given with --app-env to every app (test_secrets_engine.py has the rest)
CANARY = f"cnry{uuid.uuid4().hex[:12]}"
CELLS = ("1.11-documented", "1.11-stack", "1.11-workspace", "0.62-old-readme", "latest-documented", "latest-canvas")


def hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(EXAMPLES.iterdir())}


def test_the_example_deployments_on_two_releases(client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
                                          tmp_path: Path) -> None:
    home = tmp_path / "home"  # ~ and ${HOME} of the deployments: the run must create nothing there
    home.mkdir()
    before = hashes()
    env = {**os.environ, "HOME": str(home), "OH_MATRIX_CACHE": str(cache_root())}
    out = tmp_path / "run"
    only = [a for c in CELLS for a in ("--only", c)]
    started = time.time()
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(EXAMPLES / "matrix.toml"),
                      "--backend", "pypi", "--remedies", *FIXES, "--out", str(out), "-n", "2", *only,
                      "--app-env", f"CANARY_SETTING={CANARY}", *PYTEST_AT_ITS_WORST],
                     cwd=ROOT, timeout=2400, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # some deployments fail: that is the point
    assert hashes() == before  # the user's files, byte for byte
    # nothing at the host paths they mount (the report's browser may keep a profile in ~/.cache)
    assert not (home / ".openhands").exists() and not (home / "workspace").exists()
    data = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}
    assert sorted(cells) == sorted(CELLS)
    for c in cells.values():
        assert c["deployment"] and c["docker_run"], c["id"]
        if c["connect"]["verdict"] == "fail":  # every fail is a cause (between containers, a direction) and evidence
            assert c["connect"]["cause"] and c["connect"]["evidence"], c["id"]
            assert c["connect"]["direction"] or c["connect"]["cause"] == "app-not-published", c["id"]
        if c["connect"]["verdict"] == "pass":
            assert [t["verdict"] for t in c["tasks"]] == ["pass", "pass"], (c["id"], c["tasks"])

    # (a) the documented line works, and is shown as written with the target's image
    assert cells["1.11-documented"]["connect"]["verdict"] == "pass"
    assert "-v ~/.openhands:/.openhands" in cells["1.11-documented"]["docker_run"]
    assert cells["1.11-documented"]["docker_run"].endswith(v1_images.app_image)

    # (b) 4000:3000 on 1.x: the sandbox calls the app back at the default 3000, where nothing of it
    # listens; publishing the callback port is the proven fix, as a diff of stack.yml
    stack = cells["1.11-stack"]
    assert (stack["connect"]["cause"], stack["connect"]["direction"]) == ("connection-refused", "sandbox->app")
    fixed = next(r for r in stack["remedies"] if r["name"] == "v1-published-port")
    assert fixed["verdict"] == "pass" and "+      - SANDBOX_HOST_PORT=4000" in fixed["fix"], fixed
    diff = (out / "fixes" / "1.11-stack-v1-published-port.diff").read_text()
    assert diff == fixed["fix"] and diff.startswith(f"--- {EXAMPLES / 'stack.yml'}")
    assert "host port 4000 is" in " ".join(stack["notes"])

    # (i) Agent Canvas's documented compose on latest: the ingress, the agent-server behind it and an
    # agent in the app's own container, with no socket; the tasks ran there
    canvas = cells["latest-canvas"]
    assert canvas["connect"]["verdict"] == "pass" and canvas["api"] == "canvas", canvas["connect"]
    assert "-p 8000:8000" in canvas["docker_run"] and "docker.sock" not in canvas["docker_run"]
    # (a) on latest: the app server's documented line publishes 3000, where Agent Canvas does not
    # listen: said in seconds with the probes; publishing its 8000 there is the proven fix
    moved = cells["latest-documented"]
    assert moved["connect"]["cause"] == "app-not-published", moved["connect"]
    said = moved["connect"]["evidence"][0]["text"]
    assert "publishes 3000:3000, but Agent Canvas" in said and "listens on 8000" in said, said
    [republished] = [r for r in moved["remedies"] if r["name"] == "publish-app-port"]
    assert republished["verdict"] == "pass" and " -p 3000:8000 " in f" {republished['fix']} ", republished

    # (e) no --add-host on 0.x: host.docker.internal does not resolve in the app; DOCKER_HOST_ADDR is the
    # proven fix, as the user's own line with the flag added
    old = cells["0.62-old-readme"]
    assert (old["connect"]["cause"], old["connect"]["direction"]) == ("dns-unresolved", "app->runtime")
    line = next(r for r in old["remedies"] if r["name"] == "docker-host-addr" and r["verdict"] == "pass")["fix"]
    assert line.startswith("docker run -e DOCKER_HOST_ADDR=") and line.endswith("openhands/openhands:0.62")
    # ... and so is the flag the line lacks, as the user's line changed (the host network: by hand)
    tried = {r["name"]: r for r in old["remedies"]}
    added = tried["add-host-gateway"]
    assert added["verdict"] == "pass", added
    assert added["fix"].startswith("docker run --add-host host.docker.internal:host-gateway -it --rm")

    # (d) the env file's key and --app-env's value are secrets: nowhere in what the run wrote and
    # printed, through cells that pass (tasks included), fail, and have a fix proven and written
    printed = {"stdout": run.stdout, "stderr": run.stderr}
    for needle in (SECRET, CANARY):
        assert leaks(printed, out, cache_root(), canary=needle, since=started) == []
    assert "-e CANARY_SETTING " in cells["1.11-documented"]["docker_run"]  # named in the line, never valued
    work = cells["1.11-workspace"]
    assert any("temporary folder at /opt/workspace_base" in n for n in work["notes"])
    # ... and it publishes the app on 127.0.0.1 only: the 1.x sandbox's call back at the gateway is
    # refused, said at once; publishing it on the gateway too is the proven fix, as a diff
    assert (work["connect"]["cause"], work["connect"]["direction"]) == ("connection-refused", "sandbox->app")
    assert "published on 127.0.0.1 only" in work["connect"]["evidence"][0]["text"]
    # (no URL remedy is rerun: each names the gateway, where the loopback-only port cannot answer)
    [gw] = work["remedies"]
    assert gw["name"] == "publish-on-gateway", work["remedies"]
    assert gw["verdict"] == "pass" and '       - "127.0.0.1:3000:3000"\n+      - ' in gw["fix"], gw

    # the terminal named each proven fix; nothing of the run is left
    assert "fix for 1.11-stack (v1-published-port, proven by a rerun)" in run.stdout
    assert not client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"})
    assert not client.networks.list(filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"})
    print(json.dumps({c: (v["connect"]["verdict"], v["connect"]["cause"], v["connect"]["direction"],
                          [(r["name"], r["verdict"]) for r in v["remedies"]]) for c, v in cells.items()}, indent=1))
