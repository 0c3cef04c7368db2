"""A run's own decisions around its cells, with one attempt at a cell replaced (the cells
themselves are tested on the engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cell, matrix, session
from harness.cell import CellPlan
from harness.results import CellResult, Connect, Evidence

M = matrix.parse({"run": {"tasks": []}, "targets": [{"tag": "0.62"}], "modes": {"host-gateway": {}}}, "m.toml")
IMAGES = {"tag": "0.62", "resolved_version": "0.62.0", "backend": "pypi", "api": "v0",
          "app_image": "app", "runtime_image": "runtime"}


def ctx(tmp_path: Path) -> session.RunContext:
    return session.RunContext(run_id="r", out=str(tmp_path), matrix_path="m.toml", backend="pypi", app_env={},
                              only=[], started_at="now", images={"0.62": IMAGES})


def result(connect: Connect) -> CellResult:
    return CellResult(id="0.62-host-gateway", tag="0.62", mode="host-gateway", api="v0", connect=connect)


def test_a_cell_whose_app_gave_up_on_a_booting_runtime_runs_once_more(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    slow = Connect("fail", "budget-exceeded", 19.0, evidence=[Evidence("harness", "the app gave up ...")],
                   transient=True)
    outcomes = [result(slow), result(Connect("pass", seconds=20.0))]
    plans: list[CellPlan] = []
    monkeypatch.setattr(cell, "_attempt", lambda plan: plans.append(plan) or outcomes.pop(0))
    r = session.run_one(ctx(tmp_path), M, M.cells()[0])
    assert r.connect.verdict == "pass" and len(plans) == 2
    assert any("run twice" in n and "budget-exceeded after 19.0 s" in n for n in r.notes)


def test_a_headless_cell_without_images_keeps_its_own_column(tmp_path: Path) -> None:
    headless = matrix.Cell(M.cells()[0].target, M.cells()[0].mode, "headless")
    c = ctx(tmp_path)
    c.images = {"0.62": {"error": "no image", "resolved_version": "0.62.0"}}
    r = session.run_one(c, M, headless)
    assert (r.id, r.entrypoint, r.connect.cause) == ("0.62-host-gateway-headless", "headless", "image-unavailable")


def test_a_real_failure_is_not_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans: list[CellPlan] = []
    dns = result(Connect("fail", "dns-unresolved", 2.0, evidence=[Evidence("harness", "no such host")]))
    monkeypatch.setattr(cell, "_attempt", lambda plan: plans.append(plan) or dns)
    assert session.run_one(ctx(tmp_path), M, M.cells()[0]).connect.cause == "dns-unresolved"
    assert len(plans) == 1
