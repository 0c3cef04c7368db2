"""`oh-matrix bisect` by real runs: 0.61 and 0.62 in bridge, the two ends of a range whose
releases agree (no release lies between them on the index), each step a real `oh-matrix run`
in a process of its own; a second bisect reuses both steps. The search over a range with a
change is measured by hand (docs/bisect.md): in CI it would build releases that nothing
else here needs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import clirun
import docker

from harness.host import cleanup
from harness.model import ImageSet

ROOT = Path(__file__).resolve().parents[3]


def bisect(out: Path, *extra: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    run = clirun.run([sys.executable, "-m", "harness.cli", "bisect", "--mode", "bridge", "--from", "0.61",
                      "--to", "0.62", "--backend", "pypi", "--out", str(out), *extra],
                     cwd=ROOT, timeout=900, env=dict(os.environ))
    data = json.loads((out / "bisect.json").read_text()) if (out / "bisect.json").is_file() else {}
    return run.returncode, run.stdout + run.stderr, data


def test_a_bisect_whose_ends_agree_by_real_runs_and_its_steps_reused(client: docker.DockerClient,
                                                                     v061_images: ImageSet, v0_images: ImageSet,
                                                                     tmp_path: Path) -> None:
    code, said, data = bisect(tmp_path / "first", "--fresh")
    assert code == 0, said[-3000:]
    assert data["releases"] == ["0.61.0", "0.62.0"]
    assert [(s["version"], s["outcome"], s["reused"]) for s in data["steps"]] == [
        ("0.61.0", "fail dns-unresolved", False), ("0.62.0", "fail dns-unresolved", False)], data["steps"]
    assert data["first_different"] is None and "agree" in data["undecided"]
    assert "at most 2 runs" in said and "2 steps (2 run, 0 reused)" in said
    run_ids = []
    for step in data["steps"]:  # each step is an ordinary run folder, with the cell's own evidence
        results = json.loads((Path(step["folder"]) / "results.json").read_text())
        [cell] = results["cells"]
        assert (cell["id"], cell["connect"]["direction"]) == (f"{step['version']}-bridge", "app->runtime")
        assert step["evidence"] and (Path(step["folder"]) / "report.html").is_file()
        run_ids.append(results["run_id"])
    assert len(set(run_ids)) == 2  # two runs, not one run id shared
    for rid in run_ids:
        assert client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={rid}"}) == []
    assert (tmp_path / "first" / "bisect.md").read_text().count("fail dns-unresolved") >= 2

    code, said, again = bisect(tmp_path / "second")
    assert code == 0, said[-3000:]
    assert [s["reused"] for s in again["steps"]] == [True, True]
    assert [s["folder"] for s in again["steps"]] == [s["folder"] for s in data["steps"]]
    assert "2 steps (0 run, 2 reused)" in said
