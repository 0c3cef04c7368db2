from pathlib import Path

import pytest

from harness.errors import InputError
from harness.model import Run
from harness.results import history


def run(run_id: str, verdicts: dict[str, str], server: str = "20.10", when: str = "t") -> Run:
    return Run.model_validate({
        "run_id": run_id, "started_at": when, "finished_at": when, "backend": "pypi",
        "host": {"hostname": "h1", "server_version": server},
        "cells": [{"id": cid, "tag": "0.62", "mode": "host", "api": "v0", "resolved_version": "1",
                   "connect": {"verdict": v, "cause": None if v == "pass" else "dns-unresolved", "seconds": 3.0},
                   "boot": {"grace": 15.0}}
                  for cid, v in verdicts.items()]})


def test_regressions_and_fixes_against_the_last_run_on_the_same_host(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    first = history.record(run("r1", {"a": "pass", "b": "fail", "c": "pass"}), path)
    assert first.regressions == [] and first.fixes == []
    # another host's run in between is not "last night" for h1
    history.record(run("x1", {"a": "fail"}, server="28.0"), path)
    ch = history.record(run("r2", {"a": "fail", "b": "pass", "c": "pass", "d": "fail"}), path)
    assert [c.cell for c in ch.regressions] == ["a"]
    assert [c.cell for c in ch.fixes] == ["b"]
    assert ch.regressions[0].since == "r1"
    assert len(path.read_text().splitlines()) == 3


def test_a_torn_line_is_skipped_and_trends_render(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history.record(run("r1aaaa", {"a": "pass"}), path)
    with path.open("a") as f:
        f.write('{"run_id": "broken')  # a crash mid-write
    history.record(run("r2bbbb", {"a": "fail"}), path)
    entries = history.load(path)
    assert [e.run_id for e in entries] == ["r1aaaa", "r2bbbb"]
    table = history.trend_table(entries)
    assert table.splitlines()[3].split() == ["a", "P", "F"]


def test_trends_per_cell_on_one_host(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    for i, v in enumerate(["pass", "fail", "pass"]):
        history.record(run(f"r{i}", {"a": v, "b": "pass"}), path)
    history.record(run("other", {"a": "error"}, server="28.0"), path)
    t = history.trends(history.load(path), "h1/20.10")
    assert t == {"a": "P F P", "b": "P P P"}


def test_html_grid_shows_the_trend() -> None:
    from harness.report.html import render_html

    r = run("r9", {"0.62-host": "pass"})
    r.trends = {"0.62-host": "F P P"}
    assert "F P P" in render_html(r)


def test_a_host_label_finds_last_night_across_a_new_hostname_and_docker_version(tmp_path: Path) -> None:
    """GitHub-hosted runners get a new hostname every night: with OH_MATRIX_HOST (the
    runner label) the runs are still one host's, and a Docker upgrade that breaks a cell
    is a regression there, not a fresh start."""
    path = tmp_path / "history.jsonl"
    monday = run("r1", {"a": "pass"})
    monday.host.hostname, monday.host.label = "fv-az123-456", "ubuntu-24.04"
    history.record(monday, path)
    tuesday = run("r2", {"a": "fail"}, server="28.0")
    tuesday.host.hostname, tuesday.host.label = "fv-az987-001", "ubuntu-24.04"
    assert [c.cell for c in history.record(tuesday, path).regressions] == ["a"]
    assert history.host_key(tuesday.host) == "ubuntu-24.04"
    unlabelled = run("r3", {"a": "pass"})
    assert history.host_key(unlabelled.host) == "h1/20.10"  # as before: hostname and version
    assert history.record(unlabelled, path).fixes == []  # not the labelled host's history


def test_the_label_comes_from_oh_matrix_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.host import docker_host

    monkeypatch.setenv("OH_MATRIX_HOST", "  self-hosted+rootless ")
    assert docker_host.host_label() == "self-hosted+rootless"
    monkeypatch.setenv("OH_MATRIX_HOST", " ")
    assert docker_host.host_label() is None
    monkeypatch.delenv("OH_MATRIX_HOST")
    assert docker_host.host_label() is None


def test_an_unreadable_line_is_reported_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history.record(run("r1", {"0.62-host": "pass"}), path)
    with path.open("a") as f:
        f.write("{not json\n")
    changes = history.record(run("r2", {"0.62-host": "fail"}), path)
    assert [c.cell for c in changes.regressions] == ["0.62-host"]  # the good lines still count
    assert len(changes.unreadable) == 1 and f"{path}:2: not a run record" in changes.unreadable[0]


def test_a_rootless_or_remote_daemon_on_the_same_machine_is_another_host(tmp_path: Path) -> None:
    """A rootless grid after the rootful one on one machine is no regression of it: every
    path its cells take differs (RootlessKit's namespace), so its history is its own."""
    path = tmp_path / "history.jsonl"
    history.record(run("r1", {"a": "pass"}), path)
    rootless = run("r2", {"a": "fail"})
    rootless.host.rootless = True
    assert history.record(rootless, path).regressions == []
    assert history.host_key(rootless.host) == "h1/20.10 rootless"
    remote = run("r3", {"a": "fail"})
    remote.host.remote, remote.host.label = True, "ci"
    assert history.host_key(remote.host) == "ci remote"


def test_a_line_records_connect_seconds_the_grace_and_the_version(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history.record(run("r1", {"a": "fail"}), path)
    [e] = history.load(path)
    assert (e.cells["a"].seconds, e.cells["a"].grace) == (3.0, 15.0)


def test_the_table_is_per_host_with_dates_over_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history.record(run("r1", {"a": "pass"}, when="2026-12-05T03:10:00+00:00"), path)
    history.record(run("x1", {"a": "fail"}, server="28.0", when="2026-12-05T04:00:00+00:00"), path)
    history.record(run("r2", {"a": "fail"}, when="2026-12-06T03:11:00+00:00"), path)
    table = history.trend_table(history.load(path))
    assert table.split("\n\n")[0].splitlines() == ["host h1/20.10: 2 run(s), 12-05 to 12-06",
                                                    "cell  12-05  12-06", "      03:10  03:11", "a     P      F"]
    assert table.split("\n\n")[1].startswith("host h1/28.0: 1 run(s)")
    only = history.of_host(history.load(path), "h1/28.0")
    assert [e.run_id for e in only] == ["x1"]
    with pytest.raises(InputError, match=r"--host h9: no runs recorded for it \(hosts: h1/20.10, h1/28.0\)"):
        history.of_host(history.load(path), "h9")


def test_the_cells_carry_their_nights_for_the_charts(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    for i, v in enumerate(["pass", "fail", "pass"]):
        history.record(run(f"r{i}", {"a": v}), path)
    history.record(run("other", {"a": "error"}, server="28.0"), path)
    nights = history.nights(history.load(path), "h1/20.10")
    assert [(n.run_id, n.verdict, n.seconds, n.grace) for n in nights["a"]] == [
        ("r0", "pass", 3.0, 15.0), ("r1", "fail", 3.0, 15.0), ("r2", "pass", 3.0, 15.0)]


def test_the_history_command_names_unreadable_lines_filters_and_prints_json(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    path = tmp_path / "history.jsonl"
    history.record(run("r1", {"a": "pass"}), path)
    with path.open("a") as f:
        f.write('{"run_id": "broken"}\n')
    history.record(run("x1", {"a": "fail"}, server="28.0"), path)

    def oh_matrix(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", "history", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60)

    shown = oh_matrix()
    assert shown.returncode == 0 and "host h1/20.10" in shown.stdout and "host h1/28.0" in shown.stdout
    assert f"oh-matrix: warning: {path}:2: not a run record" in shown.stderr
    one = oh_matrix("--host", "h1/28.0")
    assert "host h1/20.10" not in one.stdout and "host h1/28.0" in one.stdout
    data = json.loads(oh_matrix("--json").stdout)
    assert list(data["hosts"]) == ["h1/20.10", "h1/28.0"] and data["hosts"]["h1/28.0"][0]["run_id"] == "x1"
    assert data["unreadable"][0].startswith(f"{path}:2: not a run record")


def test_the_report_charts_each_cells_nights_and_the_fleet_report_each_hosts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import workflow
    from harness.report.html import render_html
    from harness.results.merge import merge

    def night(out: str, run_id: str, verdicts: dict[str, str], host: str) -> Run:
        r = run(run_id, verdicts, when="2026-12-07T03:10:00+00:00")
        r.host.hostname = host
        workflow.record_history(r, out)
        return r

    for i, v in enumerate(["pass", "fail"]):
        night(str(tmp_path / "a" / f"r{i}"), f"ra{i}", {"0.62-host": v}, "alpha")
        night(str(tmp_path / "b" / f"r{i}"), f"rb{i}", {"0.62-host": "pass"}, "beta")
    last_a = night(str(tmp_path / "a" / "r9"), "ra9", {"0.62-host": "pass"}, "alpha")
    last_b = night(str(tmp_path / "b" / "r9"), "rb9", {"0.62-host": "pass"}, "beta")
    assert [n.verdict for n in last_a.cells[0].nights] == ["pass", "fail", "pass"]
    html = render_html(last_a)
    assert '<section id="history">' in html and "2026-12-07 03:10 ra1: fail dns-unresolved, 3 s (grace 15 s)" in html
    assert html.count('class="grace"') == 3
    fleet = render_html(merge([last_a, last_b]))
    assert "History on each host" in fleet and "rb1: pass, 3 s" in fleet and "ra1: fail" in fleet


def test_one_run_alone_draws_no_chart() -> None:
    from harness.report.html import render_html

    assert 'id="history"' not in render_html(run("r1", {"0.62-host": "pass"}))
