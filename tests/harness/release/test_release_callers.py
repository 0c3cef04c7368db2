"""Caller cells on the real latest (Agent Canvas), as automation drives it: an n8n-like
caller in a container on the default bridge given http://localhost:PORT, the address that
works in the host's browser, and a script on the host. The first fails own-loopback at its
first call, with the probe from its own namespace, and is fixed by real callers; the second
gets its task done, every call made from where it runs. A CI job's DockerWorkspace in a
container on the bridge polls its own loopback, and is fixed the same ways."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import clirun
import docker

from harness.host import cleanup

ROOT = Path(__file__).resolve().parents[3]
MATRIX = """
[run]
tasks = ["create-file"]
[[targets]]
tag = "latest"
[modes.host-gateway]
[callers.n8n]
url = "http://localhost:{port}"
[callers.script]
network = "host"
[callers.ci]
drives = "docker-workspace"
[[expect]]
caller = "n8n"
verdict = "fail"
cause = "own-loopback"
reason = "localhost in a container is its own"
[[expect]]
caller = "ci"
verdict = "fail"
reason = "DockerWorkspace in a container polls its own loopback (or this daemon refuses its ulimit first)"
"""


def test_a_caller_in_a_container_given_localhost_fails_at_once_and_its_fixes_are_proven(
        client: docker.DockerClient, tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MATRIX)
    out = tmp_path / "run"
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--backend", "pypi", "--remedies", "--out", str(out)], cwd=ROOT, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]  # the n8n cell fails as expected
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert sorted(cells) == ["latest-bridge-via-ci", "latest-host-gateway", "latest-host-gateway-via-n8n",
                             "latest-host-gateway-via-script"]

    n8n = cells["latest-host-gateway-via-n8n"]
    c = n8n["connect"]
    assert (n8n["entrypoint"], n8n["caller"]) == ("caller", "n8n")
    assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "own-loopback", "caller->app"), c
    assert c["seconds"] < 15, c  # its first call says so: no client timeout waited out
    why = c["evidence"][0]["text"]
    assert "the container's own loopback" in why and "TCP refused" in why and "HTTP 'HTTP/1.1 200" in why, why
    assert "-e OPENHANDS_URL=http://localhost:8000" in n8n["caller_run"]  # the app's port as the person publishes it
    assert n8n["tasks"] == []
    tried = {r["name"]: r for r in n8n["remedies"]}
    assert set(tried) == {"caller-host-gateway", "caller-host-network"}, tried
    assert all(r["verdict"] == "pass" and r["direction"] == "caller->app" for r in tried.values()), tried
    gateway = tried["caller-host-gateway"]["fix"]
    assert "+--add-host host.docker.internal:host-gateway" in gateway
    assert "--e OPENHANDS_URL=http://localhost:8000" in gateway
    assert "+-e OPENHANDS_URL=http://host.docker.internal:8000" in gateway
    assert "+--network host" in tried["caller-host-network"]["fix"]
    assert (out / "fixes" / "latest-host-gateway-via-n8n-caller-host-gateway.diff").read_text() == gateway

    script = cells["latest-host-gateway-via-script"]
    assert script["connect"]["verdict"] == "pass", script["connect"]
    assert [(t["name"], t["verdict"]) for t in script["tasks"]] == [("create-file", "pass")], script["tasks"]
    assert any("published on every address" in n for n in script["notes"])
    assert cells["latest-host-gateway"]["connect"]["verdict"] == "pass"

    # DockerWorkspace run in a CI job's container: its own loopback, decided in seconds where the
    # SDK waits 120; on a daemon that refuses its open-files ask (this machine's, 2026-12), that
    # first, in the daemon's words, and the loopback in the rerun that stands in for a raised limit
    ci = cells["latest-bridge-via-ci"]
    c = ci["connect"]
    tried = {r["name"]: r for r in ci["remedies"]}
    assert (ci["entrypoint"], ci["caller"], c["verdict"]) == ("workspace", "ci", "fail"), c
    assert c["seconds"] < 15, c
    if c["cause"] == "runtime-missing":
        assert "rlimit" in c["evidence"][0]["text"] and "hard limit of open files is" in c["evidence"][0]["text"], c
        raised = tried.pop("daemon-open-files")
        assert (raised["verdict"], raised["cause"]) == ("fail", "own-loopback"), raised
        assert raised["seconds"] < 15, raised
    else:
        assert (c["cause"], c["direction"]) == ("own-loopback", "caller->app"), c
    assert {n: r["verdict"] for n, r in tried.items()} == {"caller-host-gateway": "pass", "caller-host-network": "pass"}
    assert ("+DockerWorkspace(server_image='ghcr.io/openhands/agent-server:1.49.1-python', host_port=PORT, "
            "host='http://host.docker.internal:PORT')") in tried["caller-host-gateway"]["fix"]
    assert "DockerWorkspace(server_image=" in ci["caller_run"] and "docker.sock" in ci["caller_run"]

    # every caller container, the fixes' too, is gone with its cell, and every agent-server
    # DockerWorkspace started
    filt = {"label": f"{cleanup.RUN_LABEL}={results['run_id']}"}
    assert client.containers.list(all=True, filters=filt) == []
    started = [c.name for c in client.containers.list(all=True, filters={"name": "agent-server-"})
               if not c.name.startswith("agent-server-conversation-")]
    assert started == [], started
