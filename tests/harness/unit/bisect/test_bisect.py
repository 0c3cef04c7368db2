"""The bisect's search, its steps' matrices and outcomes, the reuse of earlier steps and what
it reads from the releases' own wheels: each without a daemon (the real bisect is measured by
hand, docs/bisect.md)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from harness import bisect, matrix
from harness.bisect import differences
from harness.bisect.search import Finding, Probe, most_runs
from harness.bisect.search import bisect as search
from harness.cli import main
from harness.errors import InputError
from harness.model import CellResult, Connect, Evidence, Run, TaskResult

RANGE = [f"1.{i}.0" for i in range(17)]


def prober(first_bad: int, unjudged: set[int] = frozenset()):  # type: ignore[assignment]
    seen: list[str] = []

    def probe(version: str) -> Probe:
        seen.append(version)
        i = RANGE.index(version)
        if i in unjudged:
            return Probe(version, None, "not judged: image-unavailable")
        return Probe(version, "pass" if i < first_bad else "fail dns-unresolved", "")

    return probe, seen


@pytest.mark.parametrize("first_bad", range(1, 17))
def test_the_first_release_that_differs_in_at_most_the_promised_runs(first_bad: int) -> None:
    probe, seen = prober(first_bad)
    found = search(RANGE, probe)
    assert found.first_different and found.first_different.version == RANGE[first_bad]
    assert found.last_same and found.last_same.version == RANGE[first_bad - 1]
    assert len(seen) == len(set(seen)) <= most_runs(len(RANGE)) == 6


def test_a_release_that_cannot_be_judged_is_skipped_for_its_neighbour() -> None:
    probe, _ = prober(5, unjudged={4, 8})
    found = search(RANGE, probe)
    assert (found.last_same.version, found.first_different.version) == ("1.3.0", "1.5.0")  # type: ignore[union-attr]
    assert [p.version for p in found.skipped] == ["1.4.0"]


def test_ends_that_agree_or_cannot_be_judged_give_no_answer_and_say_why() -> None:
    probe, _ = prober(99)
    found = search(RANGE, probe)
    assert found.first_different is None and "agree" in (found.why_undecided or "")
    probe, _ = prober(3, unjudged={0})
    found = search(RANGE, probe)
    assert found.last_same is None and "start, 1.0.0, could not be judged" in (found.why_undecided or "")


def cell(verdict: str, cause: str | None = None, tasks: list[TaskResult] | None = None) -> CellResult:
    seen = [Evidence(source="probe", text="DNS failure for host.docker.internal")]
    return CellResult(id="1.9.0-host", tag="1.9.0", mode="host", api="v1", tasks=tasks or [],
                      connect=Connect(verdict=verdict, cause=cause, seconds=4.0, evidence=seen,
                                      direction="sandbox->app" if cause else None))


def test_what_a_step_compares() -> None:
    assert bisect.outcome(cell("fail", "dns-unresolved"), None)[:2] == (
        "fail dns-unresolved", "fail dns-unresolved (sandbox->app) after 4.0 s")
    assert bisect.outcome(cell("fail", "image-unavailable"), None)[0] is None
    assert bisect.outcome(cell("error", "harness-error"), None)[0] is None
    assert bisect.outcome(cell("fail", "dns-unresolved"), "create-file")[0] == "connect fail dns-unresolved"
    done = cell("pass", tasks=[TaskResult(name="create-file", verdict="fail", detail="no file")])
    assert bisect.outcome(done, "create-file")[0] == "task create-file fail"
    lacking = cell("pass", tasks=[TaskResult(name="create-file", verdict="skip", detail="0.57.2 lacks it")])
    assert bisect.outcome(lacking, "create-file")[0] is None


def ask(tmp_path: Path, task: str | None = None, fresh: bool = False) -> bisect.Ask:
    return bisect.Ask("host", "0.62", "latest", task, "pypi", tmp_path / "out", fresh, "9.9")


def test_a_step_is_a_matrix_of_one_cell_the_harness_reads(tmp_path: Path) -> None:
    import tomllib

    m = matrix.parse(tomllib.loads(bisect.step_matrix(ask(tmp_path, "create-file"), "1.9.0")), "step.toml")
    assert [c.id for c in m.cells()] == ["1.9.0-host"] and m.tasks == ("create-file",) and m.backend == "pypi"
    m = matrix.parse(tomllib.loads(bisect.step_matrix(ask(tmp_path), "0.57.2")), "step.toml")
    assert m.tasks == () and m.targets[0].api == "v0"


def _results(folder: Path, c: CellResult) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(Run(run_id="r", started_at="t", finished_at="t", backend="pypi",
                                             cells=[c]).to_json())


def test_a_step_run_before_on_this_host_is_reused_unless_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "cache"))
    earlier = tmp_path / "earlier" / "1.9.0"
    _results(earlier, cell("fail", "dns-unresolved"))
    steps = bisect.Steps(ask(tmp_path), "host-a/20.10")
    steps.index.parent.mkdir(parents=True)
    steps.index.write_text(json.dumps({**steps._key("1.9.0"), "folder": str(earlier), "at": 0}) + "\n")
    monkeypatch.setattr(bisect.Steps, "_run", lambda self, v: pytest.fail(f"ran {v}"))
    probe = steps("1.9.0")
    assert probe.reused and probe.outcome == "fail dns-unresolved" and probe.folder == str(earlier)
    for other in (bisect.Steps(ask(tmp_path), "host-b/20.10"), bisect.Steps(ask(tmp_path, fresh=True), "host-a/20.10"),
                  bisect.Steps(ask(tmp_path, task="create-file"), "host-a/20.10")):
        with pytest.raises(pytest.fail.Exception, match=r"ran 1\.9\.0"):
            other("1.9.0")


def _wheel(cache: Path, version: str, files: dict[str, str]) -> None:
    (cache / "release-wheels").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "release-wheels" / f"openhands_ai-{version}-py3-none-any.whl", "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


def test_the_neighbours_settings_are_looked_up_in_their_own_wheels(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    _wheel(tmp_path, "0.62.0", {"openhands/core/config/sandbox_config.py": "    use_host_network: bool = False\n"})
    _wheel(tmp_path, "1.9.0", {"openhands/app_server/config.py": "os.getenv('OH_WEB_URL')\n"})
    a = Probe("0.62.0", "pass", "pass", ("SANDBOX_USE_HOST_NETWORK=true was set",))
    b = Probe("1.9.0", "fail dns-unresolved", "fail", ("the sandbox called OH_WEB_URL's host",))
    said = differences.between(Finding(["0.62.0", "1.9.0"], [a, b], a, b))
    assert said[0] == ("API generation: 0.62.0 v0 (adapter harness.openhands.v0), "
                       "1.9.0 v1 (adapter harness.openhands.v1)")
    assert ("OH_WEB_URL: 0.62.0 has no mention of it; 1.9.0 reads it (openhands/app_server/config.py)") in said
    assert ("SANDBOX_USE_HOST_NETWORK: 0.62.0 reads it (openhands/core/config/sandbox_config.py); "
            "1.9.0 has no mention of it") in said


@pytest.mark.parametrize(("argv", "words"), [
    (["--mode", "nope", "--from", "0.62"], "--mode nope: not a built-in mode"),
    (["--mode", "host", "--from", "0.x"], "--from 0.x: expected MAJOR.MINOR"),
    (["--mode", "host", "--from", "0.62", "--task", "nope"], "--task nope: not a built-in task"),
])
def test_bad_input_is_one_line_and_exit_2_before_the_daemon(argv: list[str], words: str,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # asked, it would be exit 3
    assert main(["bisect", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_a_release_the_adapter_refuses_is_skipped_without_a_build_or_a_run(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bisect.Steps, "_run", lambda self, v: pytest.fail(f"ran {v}"))
    probe = bisect.Steps(ask(tmp_path), "host-a/20.10")("0.49.0")
    assert probe.outcome is None and "an older release's API was not read" in probe.evidence[0]
    assert probe.line == "not judged: refused, older than 0.50.0, the oldest release the v0 adapter knows"


def test_a_step_of_other_harness_code_is_not_this_codes(tmp_path: Path) -> None:
    here = bisect.code_id("0.1.0")
    assert here.startswith("0.1.0+") and bisect.code_id("0.1.0") == here and bisect.code_id("0.2.0") != here
    # git's versions (setuptools-scm): the local part is the install's, not the code's, so a
    # dirty tree installed on another day is the same harness while its code is the same
    dev = bisect.code_id("0.1.dev245+g57800d444.d20250101")
    assert dev.startswith("0.1.dev245+") and dev.count("+") == 1
    assert dev == bisect.code_id("0.1.dev245+g57800d444") == bisect.code_id("0.1.dev245+g57800d444.d20250102")
    assert dev != bisect.code_id("0.1.dev246+g1a2b3c4d5")


def test_an_interrupt_reaches_the_step_once_and_the_step_is_waited_for() -> None:
    """Two Ctrl-Cs at the bisect: the step (in a session of its own) gets one SIGINT, so its
    teardown is not cut short by a second, and the bisect waits for it to end."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    child = ("import signal, sys, time\nn = [0]\nsignal.signal(signal.SIGINT, lambda *a: n.__setitem__(0, n[0] + 1))\n"
             "print('ready', flush=True)\ntime.sleep(1.5)\nsys.exit(10 + n[0])\n")
    proc = subprocess.Popen([sys.executable, "-c", child], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    # Python's own Ctrl-C handler, whatever this process inherited: started in the background
    # by a non-interactive shell (`.ci/run &`), SIGINT comes ignored, and no KeyboardInterrupt
    # would be raised (seen in a by-hand CI run)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for delay in (0.1, 0.3):
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            bisect.wait_step(proc)
    finally:
        signal.signal(signal.SIGINT, before)
    assert proc.returncode == 11  # one SIGINT, and the step ran to its own end


@pytest.mark.parametrize("start, end, flag", [("0.62", "latest", "--to latest"), ("canvas-1.16", None, "--from")])
def test_a_range_that_reaches_agent_canvas_is_refused_as_crossing_products(start: str, end: str | None,
                                                                           flag: str) -> None:
    with pytest.raises(InputError, match=f"{flag}.*another product than the app server.*crosses products"):
        bisect.check("host", start, end, None)
    bisect.check("host", "0.62", None, None)  # no --to: the app server's newest, as before
