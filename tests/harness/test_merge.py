from pathlib import Path
from typing import Any

import pytest

from harness import merge
from harness.errors import InputError
from harness.report.render import render_all


def run(run_id: str, hostname: str, server: str, verdicts: dict[str, str]) -> dict[str, Any]:
    cells = []
    for cid, v in verdicts.items():
        tag, mode = cid.split("-", 1)
        cells.append({"id": cid, "tag": tag, "mode": mode, "api": "v0", "resolved_version": f"{tag}.0",
                      "docker_run": f"docker run {mode}", "tasks": [], "remedies": [],
                      "connect": {"verdict": v, "cause": None if v == "pass" else "connect-timeout",
                                  "seconds": 20.0, "runtime_url": None, "evidence": []}})
    return {"schema": "oh-matrix/1", "run_id": run_id, "started_at": "2026-11-27T10:00:00+00:00",
            "finished_at": "2026-11-27T10:05:00+00:00", "backend": "pypi",
            "host": {"hostname": hostname, "os": "Debian 12", "server_version": server, "rootless": False},
            "cells": cells, "recommendation": {}}


def test_hosts_become_a_dimension_and_recommendations_stay_per_host_class(tmp_path: Path) -> None:
    a = run("aaaa1111", "ci-1", "20.10", {"0.62-host": "pass", "0.62-host-gateway": "pass"})
    b = run("bbbb2222", "ci-2", "28.2", {"0.62-host": "pass", "0.62-host-gateway": "fail"})
    merged = merge.merge([a, b])
    ids = [c["id"] for c in merged["cells"]]
    assert ids == ["ci-1/0.62-host", "ci-1/0.62-host-gateway", "ci-2/0.62-host", "ci-2/0.62-host-gateway"]
    assert {c["tag"] for c in merged["cells"]} == {"0.62 @ ci-1", "0.62 @ ci-2"}
    per = merged["recommendation_per_host_class"]
    assert per["Debian 12 / Docker 20.10"]["mode"] == "host-gateway"
    assert per["Debian 12 / Docker 28.2"]["mode"] == "host"  # its host-gateway failed
    assert merged["merged_from"] == ["aaaa1111", "bbbb2222"]
    written = render_all(merged, tmp_path)
    assert "0.62 @ ci-2" in written[0].read_text()


def test_needs_two_runs_and_a_known_schema() -> None:
    with pytest.raises(InputError, match="at least two"):
        merge.merge([run("a", "h", "1", {})])


def test_load_run_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{nope")
    with pytest.raises(InputError, match=r"results\.json: not valid JSON"):
        merge.load_run(str(tmp_path))
