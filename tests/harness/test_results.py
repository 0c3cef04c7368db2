import json
from pathlib import Path

import pytest

from harness import results
from harness.errors import OutputError
from harness.results import CellResult, Connect, Evidence


def test_fail_needs_a_known_cause() -> None:
    with pytest.raises(ValueError):
        Connect("fail")
    with pytest.raises(ValueError):
        Connect("fail", cause="it broke")
    with pytest.raises(ValueError):
        Connect("maybe")
    assert Connect("fail", cause="connect-timeout").cause == "connect-timeout"


def test_schema_fields(tmp_path: Path) -> None:
    cell = CellResult(id="0.62-host", tag="0.62", mode="host", api="v0", resolved_version="0.62.0",
                      connect=Connect("pass", seconds=20.5, runtime_url="http://x:1",
                                      evidence=[Evidence("api", "ready")]))
    results.write_cell(tmp_path, cell)
    run = results.build_run("r1", "t0", "t1", "pypi", {"os": "x"}, results.read_cells(tmp_path),
                            ["0.62-host"])
    results.write_json(tmp_path / "results.json", run)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "oh-matrix/1"
    assert set(data) >= {"run_id", "started_at", "finished_at", "backend", "host", "cells", "recommendation"}
    c = data["cells"][0]
    assert set(c) >= {"id", "tag", "resolved_version", "mode", "connect", "tasks", "remedies"}
    assert set(c["connect"]) >= {"verdict", "cause", "seconds", "runtime_url", "evidence"}


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    results.write_json(target, {"ok": 1})

    def boom(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", boom)
    with pytest.raises(OutputError, match="No space left on device"):
        results.write_json(target, {"ok": 2})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind
