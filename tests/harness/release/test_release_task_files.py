"""Task files on the real releases: OpenHands' own t01-t07 (the upstream catalog) and the
example task file, through the release's own agent loop with the scripted LLM, each verdict
read back from the runtime or from what the agent said; and the negative controls, one per
kind of check, which prove the checks can fail for the right reason.

One real run, many assertions (tests/harness/shared.py): every cell of this module runs at
once before the first test, holding boot slots as any cell does; 1.11's read-only workspace
is the session's read-only cell, which also runs test_release_tasks.py's create-file there
(each test reads the tasks it asked for)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from shared import (
    READ_ONLY_V1,
    V1_READ_ONLY_MOUNT,
    Ran,
    Shared,
    one_1x_at_a_time,
    plan,
    read_only_v1,
    state_catalog,
)

from harness import generations, matrix, tasks
from harness.cells.runner import run_cell
from harness.model import CellResult, ImageSet
from harness.tasks import taskfile

ROOT = Path(__file__).resolve().parents[3]
Leftovers = Callable[[str], list[str]]

# What each release can do of the upstream catalog with the pypi backend's images: a pass,
# or a skip whose reason names what lacks and where.
PASS = "pass"
V0_EXPECTED = {"t01-fix-typos": PASS, "t02-hello-sh": PASS, "t03-ipython-file": PASS, "t04-git-staging": PASS,
               "t05-browse-local": "needs browser: the pypi backend's images", "t06-pr-browsing": "needs internet:",
               "t07-interactive": PASS}
V1_EXPECTED = {**V0_EXPECTED, "t03-ipython-file": "needs ipython: the V1 SDK agent has no IPython tool"}


def upstream_catalog(images: ImageSet) -> Callable[[str], CellResult]:
    def cell(run_id: str) -> CellResult:
        return run_cell(plan(images, run_id, tasks.upstream()))
    return cell


def wrong_answer(images: ImageSet) -> Callable[[str], CellResult]:
    """t07 with keyless steps that run the script and then say a wrong number."""
    spec = next(s for s in taskfile.parse(tasks.upstream_text(), "up", "upstream") if s.name == "t07-interactive")
    assert spec.steps is not None
    wrong = replace(spec, name="t07-wrong-answer", catalog="file:wrong.toml",
                    steps=(spec.steps[0], {"do": "say", "text": "The secret number is 123."}))

    def cell(run_id: str) -> CellResult:
        return run_cell(plan(images, run_id, {"t07-wrong-answer": tasks.from_spec(wrong)}))
    return cell


def assert_as_expected(r: CellResult, expected: dict[str, str]) -> None:
    assert r.connect.verdict == "pass", r.connect.explain()
    assert [t.name for t in r.tasks] == list(expected)
    for t in r.tasks:
        assert t.catalog == "upstream" and t.source and "e0d26c1f4e51d20b0f04f83b000e819112b48cc3" in t.source
        if expected[t.name] == PASS:
            assert t.verdict == "pass", t.model_dump_json(indent=1)
            assert t.llm_calls and t.llm_calls >= 2, t  # through the agent loop: an action and the answer
        else:
            assert t.verdict == "skip" and (t.detail or "").startswith(expected[t.name]), t
            assert t.llm_calls is None and not t.actions  # never sent to the agent


def test_v0_runs_the_upstream_catalog(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["0.62-upstream"]
    r, run_id = ran.value, ran.run_id
    assert_as_expected(r, V0_EXPECTED)
    by = {t.name: t for t in r.tasks}
    assert any(a.startswith("run_ipython:") for a in by["t03-ipython-file"].actions), by["t03-ipython-file"]
    assert r.passed  # skips count for nothing
    assert leftovers(run_id) == []


def test_v1_runs_the_upstream_catalog(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells["1.11-upstream"]
    r, run_id = ran.value, ran.run_id
    assert_as_expected(r, V1_EXPECTED)
    assert r.passed
    assert leftovers(run_id) == []


# -- negative controls -------------------------------------------------------------------------

# V1 connects with its whole workspace read-only. V0 does not: its runtime exits at start
# (exit code 3; it writes to /workspace as it starts, e.g. `git init`), so on V0 the agent
# writes in a read-only folder inside the workspace.
READ_ONLY = {"v0": ("/workspace/readonly", "readonly/"), "v1": (V1_READ_ONLY_MOUNT, "")}


def read_only_v0(images: ImageSet) -> Callable[[str], CellResult]:
    """0.62 with a read-only folder inside its workspace, and the state checks written there."""
    mount, folder = READ_ONLY["v0"]

    def cell(run_id: str) -> CellResult:
        with tempfile.TemporaryDirectory(prefix="oh-matrix-ro-") as d:
            os.chmod(d, 0o777)
            return run_cell(plan(images, run_id, state_catalog(folder), {"SANDBOX_VOLUMES": f"{d}:{mount}:ro"}))
    return cell


@pytest.mark.parametrize("gen", ["v0", "v1"])
def test_a_read_only_workspace_fails_the_state_checks_with_the_runtimes_error(
        gen: str, cells: dict[str, Ran[Any]]) -> None:
    """The app mounts a host folder read-only where the agent writes (SANDBOX_VOLUMES): the
    runtime connects, the agent tries, the runtime refuses, and each check (a file's content,
    a command's result) fails, with the runtime's error in the evidence."""
    _, folder = READ_ONLY[gen]
    r = cells["0.62-read-only-folder" if gen == "v0" else READ_ONLY_V1].value
    assert r.connect.verdict == "pass", r.connect.explain()
    by = {t.name: t for t in r.tasks if t.catalog == "file:ro.toml"}  # 1.11's cell runs create-file too
    assert sorted(by) == ["ro-file", "ro-run"], r.tasks
    for t in by.values():
        assert t.verdict == "fail", t.model_dump_json(indent=1)
        # the runtime's own words: V1 an error observation, V0 its file editor's output ("ERROR: Ran into
        # [Errno 30] Read-only file system: ...")
        assert any(e.startswith(("runtime error:", "runtime output:")) and "Read-only file system" in e
                   for e in t.evidence), t.evidence
        assert t.llm_calls and t.llm_calls >= 2  # the LLM was called: the action failed, not the model
    assert f"{folder}out.txt not in the runtime" in (by["ro-file"].detail or "")
    workspace = generations.get(gen).workspace
    assert f"check command: bash {folder}hi.sh (in {workspace})" in by["ro-run"].evidence
    assert any(e.startswith("check exit status: 127, expected 0") for e in by["ro-run"].evidence), by["ro-run"]


@pytest.mark.parametrize("gen", ["v0", "v1"])
def test_a_wrong_answer_fails_the_message_check(gen: str, cells: dict[str, Ran[Any]]) -> None:
    """t07 with keyless steps that run the script and then say a wrong number (wrong_answer):
    the check reads what the agent said and fails, saying what it said."""
    r = cells[f"{'0.62' if gen == 'v0' else '1.11'}-wrong-answer"].value
    assert r.connect.verdict == "pass", r.connect.explain()
    [t] = r.tasks
    assert t.verdict == "fail" and "never contain '707'" in (t.detail or ""), t
    assert "agent said (message): The secret number is 123." in t.evidence, t.evidence
    assert any("707" in e for e in t.evidence if e.startswith("runtime output:")), t.evidence  # the runtime said it


WRONG_EXAMPLE = '''
[[tasks]]
name = "sum-numbers-wrong"
instruction = "Write sum.py in your working directory: it prints the sum of the integers in numbers.txt there."
[[tasks.files]]
path = "numbers.txt"
content = "4\\n8\\n15\\n16\\n23\\n42\\n"
[tasks.check]
run = "python3 sum.py"
output = "108"
[[tasks.steps]]
create = "sum.py"
text = "print(sum(int(line) for line in open('numbers.txt') if line.strip()) - 1)\\n"
'''


def example_run(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """`oh-matrix run` on a matrix naming tasks/example.toml and a copy whose keyless steps are
    wrong, on 0.62 and 1.11, two workers."""
    def run(run_id: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "wrong.toml").write_text(WRONG_EXAMPLE)
        m = tmp_path / "m.toml"
        m.write_text(f'[run]\nbackend = "pypi"\ntasks = ["file:{matrix.PACKAGED}/tasks/example.toml", '
                     '"file:wrong.toml"]\n[[targets]]\ntag = "0.62"\n[[targets]]\ntag = "1.11"\n[modes.host-gateway]\n')
        return subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(m), "--out",
                               str(tmp_path / "out"), "-n", "2", "--llm", "scripted"], cwd=ROOT, capture_output=True,
                              text=True, timeout=1500, env={**os.environ, "OH_MATRIX_RUN_ID": run_id})
    return run


@pytest.fixture(scope="module")
def cells(shared: Shared, v0_images: ImageSet, v1_images: ImageSet,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran[Any]]:
    """Every cell of this module at once (the boots one at a time), with the session's."""
    example = tmp_path_factory.mktemp("example")
    return shared.run({"example-task-file": one_1x_at_a_time(example_run(example)),  # a 1.11 cell in it
                       "0.62-upstream": upstream_catalog(v0_images),
                       "1.11-upstream": one_1x_at_a_time(upstream_catalog(v1_images)),
                       READ_ONLY_V1: read_only_v1(v1_images), "0.62-read-only-folder": read_only_v0(v0_images),
                       "0.62-wrong-answer": wrong_answer(v0_images),
                       "1.11-wrong-answer": one_1x_at_a_time(wrong_answer(v1_images)),
                       }) | {"example-folder": Ran("", example)}


def test_the_example_task_file_through_the_cli(cells: dict[str, Ran[Any]]) -> None:
    """The example task file and its wrong copy through `oh-matrix run` (example_run): the three
    example tasks pass; the copy fails with the check's command, its exit status and its output
    in the evidence."""
    p, out = cells["example-task-file"].value, cells["example-folder"].value / "out"
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]  # the wrong copy fails the run
    results = json.loads((out / "results.json").read_text())
    assert [c["id"] for c in results["cells"]] == ["0.62-host-gateway", "1.11-host-gateway"]
    for cell in results["cells"]:
        verdicts = {t["name"]: t["verdict"] for t in cell["tasks"]}
        assert verdicts == {"sum-numbers": "pass", "greeting-file": "pass", "count-words": "pass",
                            "sum-numbers-wrong": "fail"}, cell["tasks"]
        wrong = next(t for t in cell["tasks"] if t["name"] == "sum-numbers-wrong")
        assert wrong["catalog"] == "file:wrong.toml"
        assert any(e.startswith("check command: python3 sum.py") for e in wrong["evidence"]), wrong
        assert "check exit status: 0, expected 0" in wrong["evidence"], wrong
        assert "check output (tail): 107" in wrong["evidence"], wrong
    junit = (out / "junit.xml").read_text()
    assert 'name="test_task[1.11-host-gateway-count-words]"' in junit
    assert "sum-numbers-wrong" in (out / "summary.md").read_text()
