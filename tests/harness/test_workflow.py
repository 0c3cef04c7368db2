"""The nightly workflow is valid YAML of the shape Actions expects, and runs only what the
README tells a person to run."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit


def test_nightly_workflow_uses_only_readme_commands() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    assert wf["name"] and wf[True]["schedule"][0]["cron"]  # bare `on` is YAML 1.1's true
    steps = wf["jobs"]["matrix"]["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps)
    readme = (ROOT / "README.md").read_text()
    for run in (s["run"] for s in steps if "run" in s):
        program = run.split()[0]
        assert program in ("scripts/setup", "nox") and program in readme, run
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps)
