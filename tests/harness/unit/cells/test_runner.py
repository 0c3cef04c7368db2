"""A run's own decisions around its cells, with one attempt at a cell replaced (the cells
themselves are tested on the engine)."""

from __future__ import annotations

import pytest

from harness import matrix
from harness.cells import runner
from harness.cells.plan import CellPlan
from harness.context import RunContext
from harness.model import CellResult, Connect, Evidence, ImageFailure, ImageSet

M = matrix.parse({"run": {"tasks": []}, "targets": [{"tag": "0.62"}], "modes": {"host-gateway": {}}}, "m.toml")
IMAGES = ImageSet(tag="0.62", resolved_version="0.62.0", backend="pypi", api="v0", app_image="app",
                  runtime_image="runtime")


def ctx() -> RunContext:
    return RunContext(run_id="r", out="/nonexistent", matrix_path="m.toml", matrix_text="", backend="pypi",
                      app_env={}, started_at="now", images={"0.62": IMAGES})


def result(**connect: object) -> CellResult:
    return CellResult(id="0.62-host-gateway", tag="0.62", mode="host-gateway", api="v0",
                      connect=Connect.model_validate(connect))


class Attempts:
    """Stands in for an entry point: each run() is the next outcome."""

    def __init__(self, outcomes: list[CellResult]) -> None:
        self.outcomes, self.plans = outcomes, list[CellPlan]()

    def __call__(self, plan: CellPlan) -> Attempts:
        self.plans.append(plan)
        return self

    def run(self) -> CellResult:
        return self.outcomes.pop(0)


def test_a_cell_whose_app_gave_up_on_a_booting_runtime_runs_once_more(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = result(verdict="fail", cause="startup-grace", seconds=19.0, rerun="alone",
                  evidence=[Evidence(source="harness", text="the app gave up ...")])  # type: ignore[arg-type]
    attempts = Attempts([slow, result(verdict="pass", seconds=20.0)])
    monkeypatch.setitem(runner.ENTRYPOINTS, "api", attempts)  # type: ignore[arg-type]
    r = runner.run_one(ctx(), M, M.cells()[0])
    assert r.connect.verdict == "pass" and len(attempts.plans) == 2
    assert [p.alone for p in attempts.plans] == [False, True]  # the rerun had every boot slot
    assert any("run twice" in n and "startup-grace after 19.0 s" in n and "machine to itself" in n for n in r.notes)


def test_a_grace_that_runs_out_alone_is_a_finding_about_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(**extra: object) -> CellResult:
        r = result(verdict="fail", cause="startup-grace", seconds=19.0, rerun="alone",
                   evidence=[Evidence(source="harness", text="the app's startup grace ran out")])  # type: ignore[arg-type]
        r.boot.grace, r.boot.runtime_seconds, r.boot.load = 15.0, 31.0, [3.9, 2.0, 1.0]
        return r

    attempts = Attempts([slow(), slow()])
    monkeypatch.setitem(runner.ENTRYPOINTS, "api", attempts)  # type: ignore[arg-type]
    found = runner.run_cell(attempts.plans[0] if attempts.plans else runner.CellPlan(
        "r", M.cells()[0], IMAGES, {}, 150, 150))
    assert found.connect.cause == "startup-grace"
    assert found.connect.evidence[0].text.startswith("this host is too slow for 0.62's default startup grace (15.0 s)")
    assert "answered after 31.0 s" in found.connect.evidence[0].text


def test_a_headless_cell_without_images_keeps_its_own_column() -> None:
    headless = matrix.Cell(M.cells()[0].target, M.cells()[0].mode, "headless")
    c = ctx()
    c.images = {"0.62": ImageFailure(error="no image", resolved_version="0.62.0")}
    r = runner.run_one(c, M, headless)
    assert (r.id, r.entrypoint, r.connect.cause) == ("0.62-host-gateway-headless", "headless", "image-unavailable")


def test_a_real_failure_is_not_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = result(verdict="fail", cause="dns-unresolved", seconds=2.0,
                 evidence=[Evidence(source="harness", text="no such host")])  # type: ignore[arg-type]
    attempts = Attempts([dns])
    monkeypatch.setitem(runner.ENTRYPOINTS, "api", attempts)  # type: ignore[arg-type]
    assert runner.run_one(ctx(), M, M.cells()[0]).connect.cause == "dns-unresolved"
    assert len(attempts.plans) == 1


def test_an_exception_inside_one_cell_is_that_cells_error_and_no_other_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three cells; the second one's entry point raises. It is `error harness-error` naming
    the exception and the harness frame that raised it, run once; the other two are as they
    were; the run's exit code is 1."""
    from harness import workflow
    from harness.model import Run

    m = matrix.parse({"run": {"tasks": []}, "targets": [{"tag": "0.62"}],
                      "modes": {"host-gateway": {}, "bridge": {}, "custom-network": {}}}, "m.toml")
    calls: list[str] = []

    class Entry:
        def __init__(self, plan: CellPlan) -> None:
            self.plan = plan

        def run(self) -> CellResult:
            calls.append(self.plan.cell.id)
            if self.plan.cell.mode.name == "bridge":
                return {}["no such key"]  # type: ignore[no-any-return]  # a bug of the harness's
            return CellResult(id=self.plan.cell.id, tag="0.62", mode=self.plan.cell.mode.name, api="v0",
                              connect=Connect(verdict="pass", seconds=9.0))  # type: ignore[arg-type]

    monkeypatch.setitem(runner.ENTRYPOINTS, "api", Entry)
    results = [runner.run_one(ctx(), m, c) for c in m.cells()]
    by_id = {r.id: r for r in results}
    bad = by_id["0.62-bridge"].connect
    assert (bad.verdict, bad.cause) == ("error", "harness-error")
    assert "(at harness/cells/runner.py:" in bad.evidence[0].text  # the last frame of the harness's own code
    assert bad.evidence[0].text.startswith("the harness failed inside this cell: KeyError: 'no such key'")
    assert calls.count("0.62-bridge") == 1  # run once: an exception is not a reason of the moment
    assert [by_id[i].connect.verdict for i in ("0.62-host-gateway", "0.62-custom-network")] == ["pass", "pass"]
    run = Run(run_id="r", started_at="now", finished_at="now", backend="pypi", cells=results)
    assert workflow.outcome(run, workflow.Options(matrix="m.toml").gate) == workflow.EXIT_FAILED


def test_the_harness_frame_that_raised_is_named() -> None:
    try:
        matrix.tag_generation(7)
    except Exception as e:
        said = runner.describe(e)
    assert said.startswith("InputError: expected MAJOR.MINOR") and "(at harness/tags.py:" in said
