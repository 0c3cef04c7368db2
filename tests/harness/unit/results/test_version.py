"""The version is git's (setuptools-scm, pyproject.toml), and each run says which oh-matrix
made it: results.json, history.jsonl, the reports, a merged run's hosts, `oh-matrix --version`."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

import harness
from harness import cli
from harness.model import Run, oh_matrix_label
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.results import history, merge

ROOT = Path(__file__).resolve().parents[4]
MakeRun = Callable[..., Run]


def test_the_version_comes_from_git_with_a_fallback_for_a_tree_without_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert any(r.startswith("setuptools-scm") for r in project["build-system"]["requires"])
    assert project["tool"]["setuptools_scm"]["fallback_version"]
    assert harness.version() == importlib.metadata.version("oh-matrix") == harness.__version__


def test_the_commit_is_the_checkouts_head() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert (harness.commit() or "").removesuffix("-dirty") == head.stdout.strip()


@pytest.mark.parametrize(("version", "commit", "label"), [
    ("0.2.dev245+g57800d444", "57800d4", "0.2.dev245+g57800d444"),  # the version names the commit
    ("0.2.dev245+g57800d4", "57800d444", "0.2.dev245+g57800d4"),
    ("0.2.dev245+g57800d444", "57800d4-dirty", "0.2.dev245+g57800d444 (commit 57800d4-dirty)"),
    ("0.2.dev245+g57800d444", "9a8b7c6", "0.2.dev245+g57800d444 (commit 9a8b7c6)"),  # an editable install moved on
    ("0.2.0", None, "0.2.0"),  # a release from its wheel
    ("0.2.0", "1a2b3c4", "0.2.0 (commit 1a2b3c4)"),
    (None, None, "unknown"),
])
def test_the_label_names_the_commit_when_the_version_does_not(version: str | None, commit: str | None,
                                                              label: str) -> None:
    assert oh_matrix_label(version, commit) == label


def test_version_flag_says_version_and_commit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"oh-matrix {oh_matrix_label(harness.version(), harness.commit())}\n"


def _versioned(make: MakeRun, run_id: str, host: str, version: str | None, verdict: str = "pass") -> Run:
    run = make(run_id, host, "28.2", {"0.62-host": verdict})
    run.oh_matrix_version, run.oh_matrix_commit = version, None
    return run


def test_results_history_and_reports_carry_it(tmp_path: Path, synthetic_run: MakeRun) -> None:
    run = _versioned(synthetic_run, "aaaa1111", "h1", "0.2.dev245+g57800d444")
    run.oh_matrix_commit = "57800d4-dirty"
    assert json.loads(run.to_json())["oh_matrix_version"] == "0.2.dev245+g57800d444"
    history.record(run, tmp_path / "history.jsonl")
    line = json.loads((tmp_path / "history.jsonl").read_text())
    assert (line["oh_matrix_version"], line["oh_matrix_commit"]) == ("0.2.dev245+g57800d444", "57800d4-dirty")
    said = "0.2.dev245+g57800d444 (commit 57800d4-dirty)"
    assert f"run by oh-matrix `{said}`" in render_markdown(run)
    assert f"run by oh-matrix <code>{said}</code>" in render_html(run)
    older = _versioned(synthetic_run, "bbbb2222", "h1", None)  # results from before the field
    assert "by oh-matrix" not in render_markdown(older)


def test_a_merged_run_keeps_each_hosts_oh_matrix(synthetic_run: MakeRun) -> None:
    a = _versioned(synthetic_run, "aaaa1111", "ci-1", "0.2.dev245+g57800d444")
    b = _versioned(synthetic_run, "bbbb2222", "ci-2", "0.2.dev250+g1a2b3c4d5", verdict="fail")
    c = _versioned(synthetic_run, "cccc3333", "ci-3", None)
    merged = merge.merge([a, b, c])
    assert merged.oh_matrix_version == harness.version()
    assert [h.oh_matrix_version for h in merged.hosts.values()] == [a.oh_matrix_version, b.oh_matrix_version, None]
    [d] = merged.disagreements  # the harness that ran a side is a candidate cause
    assert "oh_matrix_version" in d.host_facts
    md = render_markdown(merged)
    assert "| group | hosts | host classes | oh-matrix |" in md and "0.2.dev250+g1a2b3c4d5" in md
    assert "merged by oh-matrix" in md
    from harness.report import fleet

    table = fleet.groups_text(merged).splitlines()
    assert table[1].split()[-1] == "oh-matrix" and any(line.endswith(" ?") for line in table)
    assert "0.2.dev245+g57800d444" in render_html(merged)
