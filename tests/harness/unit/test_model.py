"""The one results model: what results.json is written from and read into, and its
published JSON Schema (docs/results.schema.json)."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from harness import output
from harness.errors import InputError, OutputError
from harness.model import CellResult, Connect, Evidence, Run, json_schema, read_run

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "results.schema.json"


def test_fail_needs_a_known_cause() -> None:
    with pytest.raises(ValidationError):
        Connect(verdict="fail")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Connect(verdict="fail", cause="it broke")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Connect(verdict="maybe")  # type: ignore[arg-type]
    assert Connect(verdict="fail", cause="connect-timeout").cause == "connect-timeout"  # type: ignore[arg-type]


def sample_run() -> Run:
    cell = CellResult(id="0.62-host", tag="0.62", mode="host", api="v0", resolved_version="0.62.0",
                      connect=Connect(verdict="pass", seconds=20.5, runtime_url="http://x:1",  # type: ignore[arg-type]
                                      evidence=[Evidence(source="api", text="ready")]))  # type: ignore[arg-type]
    return Run(run_id="r1", started_at="t0", finished_at="t1", backend="pypi", cells=[cell])


def test_results_json_keeps_the_documented_fields_and_reads_back(tmp_path: Path) -> None:
    run = sample_run()
    output.write_run(tmp_path, run)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "oh-matrix/1"
    assert set(data) >= {"run_id", "started_at", "finished_at", "backend", "host", "cells", "recommendation"}
    c = data["cells"][0]
    assert set(c) >= {"id", "tag", "resolved_version", "mode", "connect", "tasks", "remedies"}
    assert set(c["connect"]) >= {"verdict", "cause", "seconds", "runtime_url", "evidence"}
    assert read_run(tmp_path) == run


def _same_meaning(schema: Any) -> Any:
    """The schema with what pydantic's versions spell differently for the same constraint
    made one spelling: older pydantic (2.7, the floor) adds `enum: [X]` beside `const: X` (the floors
    session runs this test on the lowest declared pydantic)."""
    if isinstance(schema, dict):
        out = {k: _same_meaning(v) for k, v in schema.items()}
        if "const" in out and out.get("enum") == [out["const"]]:
            del out["enum"]
        return out
    if isinstance(schema, list):
        return [_same_meaning(v) for v in schema]
    return schema


def test_the_published_schema_is_the_models_and_validates_what_is_written(tmp_path: Path) -> None:
    assert _same_meaning(json.loads(SCHEMA_FILE.read_text())) == _same_meaning(json_schema()), (
        "docs/results.schema.json is stale: regenerate it with `python -m harness.model > docs/results.schema.json`")
    output.write_run(tmp_path, sample_run())
    jsonschema.validate(json.loads((tmp_path / "results.json").read_text()), json_schema())
    bad = json.loads((tmp_path / "results.json").read_text())
    bad["cells"][0]["connect"]["cause"] = "gremlins"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def test_a_broken_or_foreign_results_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{nope")
    with pytest.raises(InputError, match=r"results\.json: not valid JSON"):
        read_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema": "other/2"}')
    with pytest.raises(InputError, match="schema 'other/2' is not oh-matrix/1"):
        read_run(tmp_path)
    data = json.loads(sample_run().to_json())
    data["cells"][0]["connect"]["verdict"] = "maybe"
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"cells\.0\.connect\.verdict"):
        read_run(tmp_path)


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    output.write_json(target, {"ok": 1})

    def boom(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", boom)
    with pytest.raises(OutputError, match="No space left on device"):
        output.write_json(target, {"ok": 2})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind
