"""The reports of real runs: a regression between two consecutive runs is named in the
terminal, summary.md and report.html; junit.xml parses and its counts match results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]


def oh_matrix_run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--matrix", "smoke", "--backend", "pypi",
         "--only", "0.62-host-gateway", "--out", str(out), "-n", "1", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def night_one(v0_images: ImageSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first night, shared: the regression's "before" and the recommendation that is pasted."""
    out = tmp_path_factory.mktemp("night") / "night-1"
    first = oh_matrix_run(out)
    assert first.returncode == 0, first.stdout[-2000:]
    return out


def test_a_regression_is_named_everywhere_and_junit_matches(client: docker.DockerClient, night_one: Path,
                                                            tmp_path: Path) -> None:
    # the history of night 1, so that night 2 has a night before it
    (tmp_path / "history.jsonl").write_bytes((night_one.parent / "history.jsonl").read_bytes())
    # The second night someone "hardens" the runtime binding: the cell breaks.
    second = oh_matrix_run(tmp_path / "night-2", "--app-env", "SANDBOX_RUNTIME_BINDING_ADDRESS=127.0.0.1")
    assert second.returncode == 1
    data = json.loads((tmp_path / "night-2" / "results.json").read_text())
    [reg] = data["changes"]["regressions"]
    assert reg["cell"] == "0.62-host-gateway" and reg["now"]["cause"] == "connection-refused"
    assert "regression: 0.62-host-gateway was pass" in second.stdout
    assert "regression `0.62-host-gateway`" in (tmp_path / "night-2" / "summary.md").read_text()
    assert "<strong>regression</strong>" in (tmp_path / "night-2" / "report.html").read_text()
    # --gate regressions: the same change fails a nightly job; no change passes it
    third = oh_matrix_run(tmp_path / "night-3", "--app-env", "SANDBOX_RUNTIME_BINDING_ADDRESS=127.0.0.1",
                          "--gate", "regressions")
    assert third.returncode == 0, "nothing changed since night 2"

    xml = JUnitXml.fromfile(str(tmp_path / "night-2" / "junit.xml"))
    every = [case for suite in xml for case in suite]
    cases = [c for c in every if c.classname.endswith("test_connect")]  # one per cell
    tasks = [c for c in every if c.classname.endswith("test_tasks")]  # one per cell and task
    verdicts = [c["connect"]["verdict"] for c in data["cells"]]
    assert len(cases) == len(data["cells"]) and len(tasks) == len(data["cells"]) * 5
    for t in tasks:  # the cell never connected: each task says why it did not run
        [skip] = [r for r in t.result if isinstance(r, Skipped)]
        assert "runtime not connected: connection-refused" in (skip.message or ""), skip.message
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    errored = [c for c in cases if any(isinstance(r, Error) for r in c.result)]
    skipped = [c for c in cases if any(isinstance(r, Skipped) for r in c.result)]
    assert (len(failed), len(errored), len(skipped)) == (verdicts.count("fail"), verdicts.count("error"),
                                                         verdicts.count("skip"))
    assert "connection-refused" in failed[0].result[0].message


def test_the_recommended_command_works_when_pasted(client: docker.DockerClient, night_one: Path) -> None:
    """The recommendation's `docker run`, run through a shell as printed (detached instead of
    -it, with a name and label of the test's own), gives an app whose runtime connects."""
    import shlex
    import time
    import uuid

    from harness.cells.plan import NO_LLM
    from harness.host import cleanup
    from harness.openhands.v0 import V0Client, V0Rules

    rec = json.loads((night_one / "results.json").read_text())["recommendation"]
    assert rec["cell"] == "0.62-host-gateway"
    run_id = f"test-{uuid.uuid4().hex}"
    name = f"oh-matrix-pasted-{run_id[5:13]}"
    command = rec["docker_run"].replace("docker run -it --rm", f"docker run -d --label {cleanup.RUN_LABEL}={run_id}",
                                        1).replace("--name openhands-app", f"--name {name}")
    assert shlex.split(command)[:2] == ["docker", "run"] and "-p 3000:3000" in command
    runtime = None
    try:
        subprocess.run(["sh", "-c", command], check=True, capture_output=True, timeout=60)
        app = V0Client("http://127.0.0.1:3000")
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                app.store_settings(NO_LLM)
                break
            except Exception:
                time.sleep(1)
        cid = app.create_conversation("Say hello.")
        runtime = V0Rules().runtime_container_name(cid)
        while time.monotonic() < deadline and not app.runtime_state(cid).ready:
            time.sleep(2)
        assert app.runtime_state(cid).ready
    finally:
        cleanup.sweep(client, run_id)
        if runtime:
            for c in client.containers.list(all=True, filters={"name": f"^{runtime}$"}):
                cleanup.remove_container(c)
