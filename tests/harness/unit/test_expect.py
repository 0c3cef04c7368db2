"""What a matrix expects of its cells (`[[expect]]`, like pytest's xfail) and the gate that
answers "did the run go as expected" (workflow.outcome), for both front doors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from harness import matrix, workflow
from harness.context import RunContext
from harness.errors import InputError, OutputError
from harness.model import CellResult, Host, Run

LINUX = Host(hostname="h1", os="Ubuntu 24.04.1 LTS", server_version="27.0")
DESKTOP = Host(hostname="mac", os="Docker Desktop", server_version="27.0")


def result(cell_id: str, verdict: str = "pass", cause: str | None = None, tasks: list[str] | None = None) -> CellResult:
    tag, mode = cell_id.split("-", 1)
    return CellResult.model_validate({
        "id": cell_id, "tag": tag, "mode": mode, "api": "v0",
        "connect": {"verdict": verdict, "cause": cause or (None if verdict in ("pass", "skip") else "dns-unresolved")},
        "tasks": [{"name": t, "verdict": "fail", "detail": "no file"} for t in tasks or []]})


class Judged(NamedTuple):
    """A run judged as a run's steps do, and its gate: `workflow.outcome(*judged)`."""

    run: Run
    gate: str


def default_run(tmp_path: Path, host: Host, odd: dict[str, CellResult] | None = None, gate: str = "surprises"
                ) -> Judged:
    """The default matrix's cells as a Linux engine gives them (the app server's bridge cells
    fail dns-unresolved, the rest pass: latest, Agent Canvas, starts no container), with
    `odd` in place of some; judged as a run's steps do."""
    o = workflow.Options(matrix="default", gate=gate, out=str(tmp_path / "run"))
    m = matrix.load("default")
    cells = m.cells()
    known_bad = {c.id for c in cells if c.mode.name == "bridge" and c.target.api == "v0"}
    found = {c.id: result(c.id, "fail" if c.id in known_bad else "pass") for c in cells} | (odd or {})
    ctx = RunContext(run_id="r2", out=str(tmp_path / "run"), matrix_path=m.path, matrix_text=m.text,
                     backend="pypi", app_env={}, started_at="t", host=host)
    run = Run(run_id="r2", started_at="t", finished_at="t", backend="pypi", host=host, cells=list(found.values()))
    workflow.record_history(run, ctx.out)
    workflow.judge(run, m, cells)
    return Judged(run, o.gate)


def test_a_default_run_on_linux_where_bridge_fails_as_expected_exits_0(tmp_path: Path) -> None:
    s = default_run(tmp_path, LINUX)
    assert workflow.outcome(*s) == workflow.EXIT_OK
    bridge = s.run.cell("0.62-bridge") if s.run else None
    assert bridge is not None and bridge.expected is not None and bridge.surprise is None
    expected = (bridge.expected.verdict, bridge.expected.cause, bridge.failed_as_expected)
    assert expected == ("fail", "dns-unresolved", True)
    said = workflow.gate_lines(*s)
    assert said[0] == "exit 0 (--gate surprises): the run went as expected"
    assert any(line.startswith("failed as expected on this host: 0.61-bridge, 0.62-bridge: Docker on")
               for line in said), said
    # --gate all-pass keeps the old meaning: not every cell passed
    assert workflow.outcome(*default_run(tmp_path / "strict", LINUX, gate="all-pass")) == workflow.EXIT_FAILED
    assert workflow.outcome(*default_run(tmp_path / "old", LINUX, gate="failures")) == workflow.EXIT_FAILED


def test_an_unexpected_cell_fails_the_run_and_is_named_with_how(tmp_path: Path) -> None:
    odd = {"0.62-host": result("0.62-host", "fail", "connect-timeout"),
           "0.61-bridge": result("0.61-bridge", "fail", "connection-refused"),
           "latest-host-gateway": result("latest-host-gateway", "pass", tasks=["repo"])}
    s = default_run(tmp_path, LINUX, odd)
    assert workflow.outcome(*s) == workflow.EXIT_FAILED
    said = workflow.gate_lines(*s)
    assert said[:4] == ["exit 1 (--gate surprises): 3 cell(s) surprised:",
                        "  0.61-bridge: expected fail dns-unresolved, got fail connection-refused",
                        "  0.62-host: expected to pass, got fail connect-timeout",
                        "  latest-host-gateway: expected to pass, got pass, tasks failed: repo"], said


def test_on_docker_desktop_bridge_is_expected_to_pass(tmp_path: Path) -> None:
    """The expectation is the Linux engine's: Docker Desktop maps host.docker.internal itself."""
    s = default_run(tmp_path, DESKTOP)
    assert [cid for cid, _ in workflow.surprises(s.run)] == ["0.61-bridge", "0.62-bridge"] if s.run else False


def test_a_pass_where_a_failure_is_expected_surprises_only_when_strict(tmp_path: Path) -> None:
    s = default_run(tmp_path, LINUX, {"0.62-bridge": result("0.62-bridge")})
    assert workflow.outcome(*s) == workflow.EXIT_OK  # the default matrix's entries are not strict
    m = matrix.parse(_matrix({"mode": "bridge", "verdict": "fail", "reason": "known", "strict": True}), "m.toml")
    e = m.expected(m.cells()[0], LINUX)
    assert e.surprise(result("0.62-bridge")) == "passed, where the matrix expects fail (strict)"
    assert e.surprise(result("0.62-bridge", "fail", "connect-timeout")) is None  # no cause named: any


def test_a_regression_surprises_even_a_cell_expected_to_fail(tmp_path: Path) -> None:
    """Passed last time on this host, fails now: the history's question, asked by the default gate too."""
    default_run(tmp_path, LINUX, {"0.62-bridge": result("0.62-bridge")})  # last night bridge passed here
    s = default_run(tmp_path, LINUX)
    assert s.run is not None and [c.cell for c in s.run.changes.regressions] == ["0.62-bridge"]
    assert workflow.surprises(s.run) == [("0.62-bridge", "regressed: pass in r2 on this host, now fail")]
    assert workflow.outcome(*s) == workflow.EXIT_FAILED
    assert workflow.outcome(*default_run(tmp_path, LINUX, gate="regressions")) == workflow.EXIT_OK  # as before


def test_an_unreadable_history_fails_the_gates_that_compare(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("{not json\n")
    for gate, code in (("surprises", 1), ("regressions", 1), ("all-pass", 1)):
        s = default_run(tmp_path, LINUX, gate=gate)
        assert workflow.outcome(*s) == code, gate
    s = default_run(tmp_path, LINUX)
    assert "history line(s) unreadable" in workflow.gate_lines(*s)[0]


def test_results_and_reports_show_the_expectation_and_the_surprise(tmp_path: Path) -> None:
    from harness.report.grid import render
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    s = default_run(tmp_path, LINUX, {"0.62-host": result("0.62-host", "fail", "connect-timeout")})
    assert s.run is not None
    data = s.run.model_dump(mode="json")
    cell = next(c for c in data["cells"] if c["id"] == "0.62-bridge")
    assert cell["expected"]["verdict"] == "fail" and cell["expected"]["strict"] is False and cell["surprise"] is None
    assert next(c for c in data["cells"] if c["id"] == "0.62-host")["surprise"].startswith("expected to pass")
    grid = render(s.run)
    assert "FAIL dns-unresolved (expected)" in grid and "FAIL connect-timeout SURPRISE" in grid
    md = render_markdown(s.run)
    assert "## Surprises" in md and "**0.62-host**: expected to pass, got fail connect-timeout" in md
    assert "Failed as the matrix expects on this host" in md
    html = render_html(s.run)
    assert "1 cell(s) surprised" in html and "not strict: a pass is no surprise" in html


def _matrix(*expect: dict[str, Any]) -> dict[str, Any]:
    return {"run": {"tasks": []}, "targets": [{"tag": "0.62"}], "modes": {"bridge": {}, "host": {}},
            "expect": list(expect)}


@pytest.mark.parametrize(("entry", "said"), [
    ({"verdict": "fail", "reason": "x"}, r"expect\[0\]: name the cells it is about"),
    ({"mode": "nope", "verdict": "fail", "reason": "x"}, r"expect\[0\]\.mode: 'nope' is not a mode of this matrix"),
    ({"cell": "0.62-custom-network", "verdict": "fail", "reason": "x"}, r"expect\[0\]\.cell: '0.62-custom-network'"),
    ({"target": "0.61", "verdict": "fail", "reason": "x"}, r"expect\[0\]\.target: '0.61' is not a target"),
    ({"mode": "bridge", "verdict": "pass", "reason": "x"}, r"expect\[0\]\.verdict: expected one of fail, error"),
    ({"mode": "bridge", "verdict": "fail", "cause": "dns", "reason": "x"}, r"expect\[0\]\.cause: expected one of"),
    ({"mode": "bridge", "verdict": "fail"}, r"expect\[0\]\.reason: say why"),
    ({"mode": "bridge", "verdict": "fail", "reason": "x", "on": "mac"}, r"expect\[0\]\.on: expected one of linux"),
    ({"mode": "bridge", "verdict": "fail", "reason": "x", "strict": "yes"}, r"expect\[0\]\.strict: expected true"),
    ({"mode": "bridge", "verdict": "fail", "reason": "x", "xfail": 1}, r"expect\[0\]\.xfail: unknown key"),
])
def test_a_bad_expect_entry_names_its_key(entry: dict[str, Any], said: str) -> None:
    with pytest.raises(InputError, match=rf"^m\.toml: {said}"):
        matrix.parse(_matrix(entry), "m.toml")


def test_the_first_entry_that_names_a_cell_applies() -> None:
    m = matrix.parse(_matrix({"cell": "0.62-bridge", "verdict": "error", "reason": "first"},
                             {"mode": "bridge", "verdict": "fail", "reason": "second"}), "m.toml")
    bridge, host = m.cells()
    assert m.expected(bridge, LINUX).reason == "first"
    assert m.expected(host, LINUX).verdict == "pass"
    assert m.expected(bridge, None).reason == "first"  # no `on`: every host, even one that did not say


def test_an_expectation_on_linux_does_not_apply_where_the_host_did_not_say() -> None:
    m = matrix.parse(_matrix({"mode": "bridge", "on": "linux", "verdict": "fail", "reason": "x"}), "m.toml")
    bridge = m.cells()[0]
    assert m.expected(bridge, LINUX).verdict == "fail"
    assert m.expected(bridge, Host()).verdict == "pass" and m.expected(bridge, DESKTOP).verdict == "pass"
    assert Host(os="OrbStack").platform == "desktop" and Host(os="?").platform is None


def test_a_cell_expected_to_fail_is_xfailed_under_pytest() -> None:
    """The suite's own tests say it as pytest would: xfail with the reason; a strict one that
    passes fails its test."""
    from harness.model import Expected
    from harness.plugin import expect_as_pytest

    failing = Expected.model_validate({"verdict": "fail", "reason": "no name on Linux"})
    with pytest.raises(pytest.xfail.Exception, match=r"0\.62-bridge: fail dns-unresolved, as expected on this host"):
        expect_as_pytest(failing, result("0.62-bridge", "fail"))
    expect_as_pytest(failing, result("0.62-bridge"))  # not strict: a pass is a pass
    with pytest.raises(pytest.fail.Exception, match=r"passed, where the matrix expects fail \(strict\)"):
        expect_as_pytest(failing.model_copy(update={"strict": True}), result("0.62-bridge"))
    expect_as_pytest(failing, result("0.62-bridge", "error", "harness-error"))  # a surprise: its test fails as it is


def test_finish_decides_the_gate_once_for_both_front_doors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """workflow.finish threads the steps after the cells and answers the gate: `oh-matrix run`
    exits with Finished.code, the plugin sets pytest's code from Finished.gate; a write that
    fails stops the steps before the final sweep, with the gate still answered."""
    m = matrix.load("default")
    cells = m.cells()
    found = workflow.Found(results={c.id: result(c.id, "fail" if c.mode.name == "bridge" and c.target.api == "v0"
                                                 else "pass") for c in cells})
    ctx = RunContext(run_id="r", out=str(tmp_path / "run"), matrix_path=m.path, matrix_text=m.text,
                     backend="pypi", app_env={}, started_at="t", host=LINUX)
    p = workflow.Prepared(workflow.Inputs(workflow.Options(matrix="default"), m, cells, {}), None, ctx)
    swept: list[str] = []
    monkeypatch.setattr(workflow, "write", lambda run, out: None)
    monkeypatch.setattr(workflow, "render", lambda run, out: None)
    monkeypatch.setattr(workflow, "final_sweep", lambda run_id: swept.append(run_id) or True)
    done = workflow.finish(p, found)
    assert (done.gate, done.code, done.swept_at_end, done.error, swept) == (workflow.EXIT_OK, 0, True, None, ["r"])
    assert done.lines == workflow.gate_lines(done.run, "surprises") and done.lines[0].startswith("exit 0")
    assert [c.id for c in done.run.cells] == [c.id for c in cells]  # in matrix order
    assert done.run.recommendation.cell is not None

    def full(run: object, out: str) -> None:
        raise OutputError("results.json: No space left on device")

    monkeypatch.setattr(workflow, "write", full)
    broken = workflow.finish(p, found)
    assert (broken.code, broken.gate, broken.swept_at_end) == (workflow.EXIT_FAILED, workflow.EXIT_OK, None)
    assert broken.error == "results.json: No space left on device" and swept == ["r"]  # no final sweep
