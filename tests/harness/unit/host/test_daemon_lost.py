"""A daemon that goes away mid-run: the cells it took down say so (never a harness bug, never a
traceback from their teardown), and the run ends with exit 3 in one line saying where what it
left goes (the engine test with a daemon of its own: test_daemon_lost_engine.py)."""

from __future__ import annotations

import pytest
import requests

from harness import matrix, workflow
from harness.cells import runner
from harness.cells.cell import CellCore
from harness.cells.plan import CellPlan
from harness.context import RunContext
from harness.host import docker_host
from harness.model import Cause, CellResult, Connect, ImageSet, Run, Verdict

M = matrix.parse({"run": {"tasks": []}, "targets": [{"tag": "0.62"}], "modes": {"bridge": {}}}, "m.toml")
IMAGES = ImageSet(tag="0.62", resolved_version="0.62.0", backend="pypi", api="v0", app_image="app",
                  runtime_image="runtime")
GONE = requests.exceptions.ConnectionError(
    "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")


def ctx() -> RunContext:
    return RunContext(run_id="r", out="/nonexistent", matrix_path="m.toml", matrix_text="", backend="pypi",
                      app_env={}, started_at="now", images={"0.62": IMAGES})


def test_a_connection_to_the_daemon_that_fails_is_the_daemon_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/dockerd-b.sock")
    why = docker_host.lost(GONE)
    assert why is not None and why.startswith("the Docker daemon at unix:///run/dockerd-b.sock went away: "
                                              "ConnectionError: ('Connection aborted.', FileNotFoundError(2")
    try:  # raised while handling it (a teardown after a body that lost the daemon): still that
        try:
            raise GONE
        except requests.exceptions.ConnectionError:
            raise RuntimeError("teardown") from None
    except RuntimeError as e:
        assert docker_host.lost(e) is None  # `from None`: nothing to follow, a bug of its own
    assert docker_host.lost(ValueError("a bug")) is None


class Teardown(CellCore):
    """A cell whose body and teardown both meet a daemon that is gone."""

    def body(self) -> None:
        self.resources.on_close(self.remove)
        raise GONE

    def remove(self) -> None:
        raise requests.exceptions.ConnectionError("('Connection aborted.', ConnectionRefusedError(111))")


def test_a_cell_the_daemon_took_down_is_an_error_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_host, "client", lambda: object())
    monkeypatch.setitem(runner.ENTRYPOINTS, "api", Teardown)
    r = runner.run_one(ctx(), M, M.cells()[0])
    assert (r.connect.verdict, r.connect.cause) == (Verdict.ERROR, Cause.DAEMON_LOST)
    assert "went away" in r.connect.evidence[0].text and "removed by the sweep" in r.connect.evidence[0].text

    def unready(plan: CellPlan) -> CellCore:  # a worker whose client cannot be made at all
        raise docker_host.DockerUnavailable("Docker is not usable at unix:///x: no daemon socket")

    monkeypatch.setitem(runner.ENTRYPOINTS, "api", unready)
    assert runner.run_one(ctx(), M, M.cells()[0]).connect.cause == Cause.DAEMON_LOST


def cell(cause: Cause | None, verdict: Verdict = Verdict.ERROR) -> CellResult:
    return CellResult(id=f"0.62-{cause}", tag="0.62", mode="bridge", api="v0",
                      connect=Connect(verdict=verdict, cause=cause))


def state(*cells: CellResult, swept: bool | None = None) -> tuple[Run, bool | None]:
    """A run's cells and its final sweep, as `workflow.daemon_gone(*state(...))` reads them."""
    return Run(run_id="r", started_at="now", finished_at="now", backend="pypi", cells=list(cells)), swept


def test_a_run_whose_daemon_went_away_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.213.0.2:2375")
    assert workflow.daemon_gone(*state(cell(None, Verdict.PASS))) is None
    line = workflow.daemon_gone(*state(cell(Cause.DAEMON_LOST), cell(None, Verdict.PASS), swept=False))
    assert line is not None and "\n" not in line
    assert line.startswith("the Docker daemon at tcp://10.213.0.2:2375 went away during the run: 1 cell(s) error "
                           "daemon-lost (0.62-daemon-lost)")
    assert line.endswith("removed by the next run's first sweep once it answers again (or oh-matrix clean)")
    back = workflow.daemon_gone(*state(cell(Cause.DAEMON_LOST), swept=True))
    assert back is not None and back.endswith("swept at the end of the run, once it answered again")
    after = workflow.daemon_gone(*state(cell(None, Verdict.PASS), swept=False))  # gone after the cells
    assert after is not None and "after the cells" in after


def test_the_run_exits_3_when_its_daemon_went_away(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def prepare(o: workflow.Options, selection: object = None) -> workflow.Prepared:
        return workflow.Prepared(workflow.Inputs(o, M, [], {}), None, ctx())

    def cells(p: workflow.Prepared) -> workflow.Found:
        return workflow.Found()

    def collect(p: workflow.Prepared, found: workflow.Found) -> Run:
        return Run(run_id="r", started_at="now", finished_at="now", backend="pypi", cells=[cell(Cause.DAEMON_LOST)])

    monkeypatch.setattr(workflow, "prepare", prepare)
    monkeypatch.setattr(workflow, "collect", collect)
    for step in ("record_history", "judge", "write", "render"):  # the steps that would touch the disk
        monkeypatch.setattr(workflow, step, lambda *a: None)
    monkeypatch.setattr(workflow, "final_sweep", lambda run_id: False)  # the daemon is gone
    assert workflow.run(workflow.Options(matrix="m.toml"), cells) == workflow.EXIT_DOCKER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("oh-matrix: the Docker daemon at ") and "daemon-lost" in err[0]
