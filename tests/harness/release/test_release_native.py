"""Agent Canvas installed as a person installs it today, for real: `npx
@openhands/agent-canvas@1.16.0` on this machine, its launcher starting the agent-server with
uvx. Today uvx resolves fastapi 0.165 under agent-server 1.44.0, which dies at import: the
cell fails for that as soon as the agent-server has died, with its exception quoted and the
ingress's answer to a person's browser as the second line. `latest` (1.20.0) does not install
from this machine's npm registry: one line, an error, not an OpenHands fail. The remedy
`uv-exclude-newer` (uv kept to the release's day) is proven by its rerun, which connects. Nothing the
cells started on this machine is left running."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import clirun

from harness.host import cleanup, processes

ROOT = Path(__file__).resolve().parents[3]


def test_the_native_install_of_1_16_fails_at_the_agent_servers_start_and_latest_says_why_not(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", "native", "--remedies",
                      "--out", str(out)], cwd=ROOT, timeout=1200)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert sorted(cells) == ["canvas-1.16-native", "latest-native"]

    cell = cells["canvas-1.16-native"]
    c = cell["connect"]
    assert (cell["resolved_version"], c["verdict"], c["cause"]) == ("1.16.0", "fail", "agent-server-exited"), c
    assert cell["docker_run"] == "npx @openhands/agent-canvas@1.16.0"
    first, second = c["evidence"][0], c["evidence"][1]
    assert first["source"] == "harness" and "the agent-server exited at start with code 1" in first["text"]
    assert "`TypeError: Query() got an unexpected keyword argument 'lte'`" in first["text"]
    assert "openhands/agent_server/" in first["text"]  # where it died, from its traceback
    assert second["source"] == "probe" and "answered 502 `Bad Gateway: connect ECONNREFUSED 127.0.0.1:18000`" \
        in second["text"], c["evidence"]
    said = " | ".join(e["text"] for e in c["evidence"][2:])
    assert "uvx's environment for the agent-server holds fastapi 0.16" in said  # what uv resolved today
    assert "[agent-server] Exited with code 1" in said and "[agent-server] Using PyPI (1.44.0, default)" in said
    # decided when the agent-server died, before the launcher's 60 s wait for it was over (the
    # ingress, which it starts then, answered later)
    after = re.search(r", (\d+) s after the launcher began", second["text"])
    assert after and c["seconds"] < int(after.group(1)), c

    # the remedy, proven by a rerun: uv kept to the release's day, the same launcher connects
    [fix] = cell["remedies"]
    assert (fix["name"], fix["verdict"]) == ("uv-exclude-newer", "pass"), fix
    assert fix["docker_run"] == "UV_EXCLUDE_NEWER=2026-08-28T14:05:16Z npx @openhands/agent-canvas@1.16.0"

    latest = cells["latest-native"]["connect"]
    assert (cells["latest-native"]["resolved_version"], latest["verdict"], latest["cause"]) == (
        "1.20.0", "error", "image-unavailable"), latest
    assert latest["evidence"][0]["text"] == ("agent-canvas 1.20.0 does not install from this machine's npm registry: "
                                             "@openhands/extensions@0.22.1 is missing (it has up to 0.19.0)")
    assert not processes.find(results["run_id"]), "a process of the run outlived it"
    assert not cleanup.scratch_folders(results["run_id"]), "a cell's HOME outlived it"
