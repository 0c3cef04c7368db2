"""The `cli` entry point for real: the `openhands` CLI paired with 1.11, built from its
PyPI wheel, run headless on a networking mode with the built-in tasks (one mode and two
tasks for CI's minutes; the figure with two modes and five is by hand, README), and the
line its own `openhands serve` runs, which examples/deployments/openhands-serve.sh must be."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import clirun
import docker
import pytest

from harness.host import cleanup
from harness.images import cli
from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]
MATRIX = """[run]
backend = "pypi"
entrypoints = ["cli"]
tasks = ["create-file", "run-command"]

[[targets]]
tag = "1.11"

[modes.host-gateway]
"""
# What `docker` answers the CLI's serve: `docker info` works, `docker run` is written down.
RECORDER = """#!/bin/sh
[ "$1" = info ] && exit 0
printf '%s\\n' "$@" > /tmp/serve-argv
"""


@pytest.fixture(scope="module")
def cli_image(client: docker.DockerClient, v1_images: ImageSet) -> cli.CliImage:
    return cli.prepare_cli(client, cli.paired(v1_images.resolved_version).cli)


def test_the_cli_runs_headless_and_its_tasks_are_judged_by_their_effect(client: docker.DockerClient,
                                                                      v1_images: ImageSet,
                                                                      cli_image: cli.CliImage,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MATRIX)
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--out", str(tmp_path / "run"), "-n", "1"], cwd=ROOT, timeout=1500, env=dict(os.environ))
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    [c] = data["cells"]
    print(json.dumps(c["connect"], indent=1), [(t["name"], t["verdict"], t["detail"]) for t in c["tasks"]])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert (c["id"], c["entrypoint"], c["connect"]["verdict"]) == ("1.11-host-gateway-cli", "cli", "pass")
    assert "its agent called its LLM" in c["connect"]["evidence"][0]["text"]
    assert [(t["name"], t["verdict"]) for t in c["tasks"]] == [("create-file", "pass"), ("run-command", "pass")]
    assert all(t["llm_calls"] and t["actions"] for t in c["tasks"]), c["tasks"]  # the CLI's agent did the work
    image = data["images"]["1.11"]
    assert image["cli_version"] == cli_image.version and image["cli_image"] == cli_image.ref
    line = c["docker_run"]
    assert line.startswith("docker run --rm ") and "openhands --headless --override-with-envs -t" in line, line
    assert "-v /var/run/docker.sock" not in line and "--add-host host.docker.internal:host-gateway" in line
    assert "recommended: 1.11-host-gateway-cli" not in run.stdout  # the CLI is no deployment of the app
    assert client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"}) == []


def test_the_serve_example_is_the_line_the_cli_runs(client: docker.DockerClient, cli_image: cli.CliImage) -> None:
    script = (f"mkdir -p /tmp/fake && cat > /tmp/fake/docker <<'END'\n{RECORDER}END\n"
              "chmod +x /tmp/fake/docker && PATH=/tmp/fake:$PATH openhands serve >/dev/null 2>&1; cat /tmp/serve-argv")
    out = client.containers.run(cli_image.ref, ["sh", "-c", script], network_mode="none", remove=True).decode()
    argv = ["docker", *out.split("\n")[:-1]]
    text = (ROOT / "examples" / "deployments" / "openhands-serve.sh").read_text()
    shipped = shlex.split(" ".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    # the CLI names its own home's ~/.openhands (root's in its container): the file says ~
    assert [a.replace("/root/.openhands", "~/.openhands") for a in argv] == shipped
