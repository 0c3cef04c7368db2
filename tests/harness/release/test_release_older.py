"""Releases older than the three of today, driven the way each really takes its calls
(harness/generations.py, `before`), in one run: 0.57 takes a conversation's next message
over socket.io only (its tasks are real, not skipped); 1.0 names its sandbox at random, calls
its app back at host port 3000 whatever it is told, and gives its sandbox no
host.docker.internal, which on Linux is a callback that cannot resolve. One representative
of each; the six-release figure with both modes is by hand (docs/bisect.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import clirun
import docker
import pytest

from harness.host import cleanup

ROOT = Path(__file__).resolve().parents[3]
MATRIX = """[run]
backend = "pypi"
tasks = ["create-file", "run-command"]

[[targets]]
tag = "0.57"

[[targets]]
tag = "1.0"

[modes.host-gateway]
"""


def test_older_releases_are_driven_by_their_own_calls(client: docker.DockerClient, tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MATRIX)
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--out", str(tmp_path / "run"), "-n", "2"], cwd=ROOT, timeout=1800, env=dict(os.environ))
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}
    for c in cells.values():
        print(c["id"], json.dumps(c["connect"], indent=1), [(t["name"], t["verdict"], t["detail"]) for t in c["tasks"]])
    assert set(cells) == {"0.57-host-gateway", "1.0-host-gateway"}, run.stdout[-3000:] + run.stderr[-2000:]
    assert {t: i["resolved_version"] for t, i in data["images"].items()} == {"0.57": "0.57.2", "1.0": "1.0.0"}

    # 0.57: connected, and each task a message over socket.io (no REST message call before 0.59.0)
    v0 = cells["0.57-host-gateway"]
    assert v0["connect"]["verdict"] == "pass", v0["connect"]
    assert [(t["name"], t["verdict"]) for t in v0["tasks"]] == [("create-file", "pass"), ("run-command", "pass")]

    # 1.0: its sandbox found by the name the start task gave, on the one port its callbacks go to
    v1 = cells["1.0-host-gateway"]
    c = v1["connect"]
    assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "dns-unresolved", "sandbox->app"), c
    assert c["seconds"] is not None and c["seconds"] < 30, c
    assert "host.docker.internal does not resolve in the sandbox" in c["evidence"][0]["text"]
    sandbox = v1["runtime_container"]
    assert sandbox.startswith("oh-agent-server-") and len(sandbox) > len("oh-agent-server-") + 16, sandbox
    assert any("no setting moves it" in n and "3000" in n for n in v1["notes"]), v1["notes"]
    assert "-p 3000:3000" in v1["docker_run"], v1["docker_run"]
    assert all(t["verdict"] == "skip" for t in v1["tasks"])  # not connected: no task is sent
    assert run.returncode == 1  # a cell failed: the run says so
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(sandbox)
    assert client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"}) == []
