"""A user's headless line without the Docker socket, on the real 0.62, as written: judged as
the headless entry point, failing for the missing socket in seconds with the app's own line,
and fixed by the socket mount added to the user's line, which the rerun proves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import clirun
import docker
import pytest

from harness.model import ImageSet

pytestmark = [pytest.mark.engine, pytest.mark.release]
ROOT = Path(__file__).resolve().parents[2]
LINE = ("docker run --rm -e LLM_API_KEY=sk-not-a-key -e LLM_MODEL=openai/gpt-4o "
        "docker.openhands.dev/openhands/openhands:0.62 python -m openhands.core.main -t 'Create a file'")


def test_a_headless_line_without_the_socket_fails_for_it_and_is_fixed(client: docker.DockerClient,
                                                                      v0_images: ImageSet, tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(f'[run]\ntasks = []\n[[targets]]\ntag = "0.62"\n'
                                     f'[deployments.job]\ndocker_run = "{LINE}"\nown_image = false\n')
    out = tmp_path / "run"
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--backend", "pypi", "--remedies", "--remedy", "mount-docker-socket", "--out", str(out)],
                     cwd=ROOT, timeout=900)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    [cell] = json.loads((out / "results.json").read_text())["cells"]
    c = cell["connect"]
    assert (cell["id"], cell["entrypoint"]) == ("0.62-job-headless", "headless")
    assert (c["verdict"], c["cause"]) == ("fail", "docker-unreachable"), c
    assert c["seconds"] < 30, c  # the process says so at once; no budget waited out
    assert "given no Docker daemon" in c["evidence"][0]["text"]
    assert c["evidence"][1]["source"] == "app-log" and "Launch docker client failed" in c["evidence"][1]["text"]
    assert "docker.sock" not in cell["docker_run"] and cell["socket_mounted_in"] == []
    assert cell["docker_run"].endswith("python -m openhands.core.main -t 'Create a file'")
    [fix] = cell["remedies"]
    assert (fix["name"], fix["verdict"]) == ("mount-docker-socket", "pass"), fix
    assert fix["fix"] == LINE.replace("docker run ", "docker run -v /var/run/docker.sock:/var/run/docker.sock ", 1)
    assert (out / "fixes" / "0.62-job-headless-mount-docker-socket.sh").read_text() == fix["fix"]
