"""A user's headless line without the Docker socket, on the real 0.62, as written: judged as
the headless entry point, failing for the missing socket in seconds with the app's own line,
and fixed by the socket mount added to the user's line, which the rerun proves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import clirun
import docker

from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]
LINE = ("docker run --rm -e LLM_API_KEY=sk-not-a-key -e LLM_MODEL=openai/gpt-4o "
        "docker.openhands.dev/openhands/openhands:0.62 python -m openhands.core.main -t 'Create a file'")
# The same line with the one other thing a Linux host needs: then the socket is all that is wrong.
MAPPED = LINE.replace("--rm ", "--rm --add-host host.docker.internal:host-gateway ", 1)
SOCKET = "-v /var/run/docker.sock:/var/run/docker.sock"


def test_a_headless_line_without_the_socket_fails_for_it_and_is_fixed(client: docker.DockerClient,
                                                                      v0_images: ImageSet, tmp_path: Path) -> None:
    """One run, two lines: the user's as reported, whose rerun with the socket says what is
    next (its runtime now starts, and host.docker.internal does not resolve on Linux), and
    the same line with --add-host, whose rerun with the socket passes: the fix, proven."""
    deployments = "".join(f'[deployments.{name}]\ndocker_run = "{line}"\nown_image = false\n'
                          for name, line in (("job", LINE), ("mapped", MAPPED)))
    (tmp_path / "m.toml").write_text(f'[run]\ntasks = []\n[[targets]]\ntag = "0.62"\n{deployments}')
    out = tmp_path / "run"
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--backend", "pypi", "--remedies", "--remedy", "mount-docker-socket", "--out", str(out)],
                     cwd=ROOT, timeout=900)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    cells = {c["id"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert sorted(cells) == ["0.62-job-headless", "0.62-mapped-headless"]
    for cell in cells.values():
        c = cell["connect"]
        assert cell["entrypoint"] == "headless"
        assert (c["verdict"], c["cause"]) == ("fail", "docker-unreachable"), c
        assert c["seconds"] < 30, c  # the process says so at once; no budget waited out
        assert "given no Docker daemon" in c["evidence"][0]["text"]
        assert c["evidence"][1]["source"] == "app-log" and "Launch docker client failed" in c["evidence"][1]["text"]
        assert "docker.sock" not in cell["docker_run"] and cell["socket_mounted_in"] == []
        assert cell["docker_run"].endswith("python -m openhands.core.main -t 'Create a file'")
    # as reported: with the socket the runtime starts, and the rerun names what is next
    [next_] = cells["0.62-job-headless"]["remedies"]
    assert (next_["name"], next_["verdict"], next_["cause"]) == ("mount-docker-socket", "fail", "dns-unresolved")
    assert next_["direction"] == "app->runtime" and SOCKET in next_["docker_run"]
    # the socket alone missing: the rerun passes, and the fix is the user's line with the mount
    [fix] = cells["0.62-mapped-headless"]["remedies"]
    assert (fix["name"], fix["verdict"]) == ("mount-docker-socket", "pass"), fix
    # the user's values are never written back, not even into their own line (docs/deployments.md)
    shown = MAPPED.replace("sk-not-a-key", "<redacted>").replace("openai/gpt-4o", "<redacted>")
    assert fix["fix"] == shown.replace("docker run ", f"docker run {SOCKET} ", 1)
    assert (out / "fixes" / "0.62-mapped-headless-mount-docker-socket.sh").read_text() == fix["fix"]
