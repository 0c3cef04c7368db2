"""Every bad input, from every command, flag and OH_MATRIX_* knob: one line on stderr naming
the file, key, flag or variable, exit 2, no traceback, and the daemon never asked (every case
runs with DOCKER_HOST pointing at a socket that does not exist: asking it would be exit 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NO_DAEMON = "unix:///nonexistent/docker.sock"
NOT_UTF8 = b"\xe9t\xe9\n"  # latin-1 bytes, as an editor on another system saves them


def oh_matrix(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "DOCKER_HOST": NO_DAEMON, **env}, timeout=120)


def a_run(folder: Path, run_id: str = "r1") -> Path:
    """A run folder with a real run's results.json (tests/harness/unit/report/test_report.py)."""
    from test_report import real_run

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({**real_run(), "run_id": run_id}))
    return folder


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of bad (and good) inputs; the cases' `{t}` is this folder."""
    t = tmp_path
    (t / "a-file").write_text("x\n")
    (t / "empty").mkdir()
    (t / "latin1.toml").write_bytes(b'[[targets]]\ntag = "0.62"\n[modes.host]\n# ' + NOT_UTF8)
    (t / "tasks.toml").write_bytes(b'[[tasks]]\nname = "t"\ninstruction = "' + NOT_UTF8.strip() + b'"\n')
    (t / "with-tasks.toml").write_text('[run]\ntasks = ["file:tasks.toml"]\n[[targets]]\ntag = "0.62"\n[modes.host]\n')
    (t / "compose.yml").write_bytes(b"services:\n  openhands:\n    image: x # " + NOT_UTF8)
    (t / "with-compose.toml").write_text('[[targets]]\ntag = "0.62"\n[deployments.mine]\ncompose = "compose.yml"\n')
    (t / "constraints.txt").write_bytes(b"pip==24.0 # " + NOT_UTF8)
    a_run(t / "reports" / "run1", "r1")
    a_run(t / "copy", "r1")  # the same run, copied: not a second host
    a_run(t / "run2", "r2")
    (t / "reports" / "history.jsonl").write_text("not json\n")
    (t / "hist-dir" / "history.jsonl").mkdir(parents=True)
    (t / "bad-results").mkdir()
    (t / "bad-results" / "results.json").write_bytes(b'{"schema": "' + NOT_UTF8.strip() + b'"}')
    (t / "out-hist" / "history.jsonl").mkdir(parents=True)
    (t / "py312").write_text("#!/bin/sh\necho cpython 3 11\n")
    (t / "py312").chmod(0o755)
    return t


# (args, extra environment, what the one line says), `{t}` the fixture's folder
CASES = {
    # files that are not UTF-8
    "matrix-not-utf8": (["run", "--matrix", "{t}/latin1.toml"], {}, "{t}/latin1.toml: not UTF-8 text (byte"),
    "task-file-not-utf8": (["run", "--matrix", "{t}/with-tasks.toml"], {}, "{t}/tasks.toml: not UTF-8 text"),
    "compose-not-utf8": (["run", "--matrix", "{t}/with-compose.toml"], {}, "{t}/compose.yml: compose file: not UTF-8"),
    "results-not-utf8": (["report", "{t}/bad-results"], {}, "{t}/bad-results/results.json: not UTF-8 text"),
    "constraints-not-utf8": (["images", "build", "0.62", "--constraints", "{t}/constraints.txt"], {},
                             "--constraints {t}/constraints.txt: not UTF-8 text"),
    # history
    "history-of-a-file": (["history", "{t}/a-file"], {}, "history {t}/a-file: not a folder"),
    "history-of-nothing": (["history", "{t}/nowhere"], {}, "history {t}/nowhere: no such folder"),
    "history-not-a-reports-folder": (["history", "{t}/empty"], {}, "history {t}/empty: no history.jsonl here"),
    "history-of-a-run-folder": (["history", "{t}/reports/run1"], {},
                                "it is a run folder, its history is in {t}/reports"),
    "history-file-a-folder": (["history", "{t}/hist-dir"], {}, "{t}/hist-dir/history.jsonl: not a file"),
    "history-no-run-in-it": (["history", "{t}/reports"], {}, "{t}/reports/history.jsonl: no runs recorded"),
    "history-last-0": (["history", "{t}/reports", "--last", "0"], {}, "argument --last: expected a whole number"),
    "history-last-negative": (["history", "--last", "-1"], {}, "argument --last: expected a whole number"),
    # init, report, compare, merge
    "init-to-a-file": (["init", "smoke", "--to", "{t}/a-file"], {}, "init --to {t}/a-file: {t}/a-file is not a folder"),
    "init-unknown": (["init", "nope"], {}, "init nope: not a shipped matrix"),
    "report-of-a-file": (["report", "{t}/a-file"], {}, "{t}/a-file: not a folder"),
    "report-not-a-run": (["report", "{t}/empty"], {}, "{t}/empty: not a run folder (no results.json)"),
    "compare-skip-unknown-tag": (["compare", "{t}/run2", "{t}/copy", "--skip-tag", "0.99"], {},
                                 "compare --skip-tag 0.99: no cell of either run has this tag"),
    "merge-same-folder-twice": (["merge", "{t}/run2", "{t}/run2/", "--out", "{t}/m"], {},
                                "merge: {t}/run2 and {t}/run2/ are the same run folder"),
    "merge-a-copy": (["merge", "{t}/reports/run1", "{t}/copy", "--out", "{t}/m"], {},
                     "merge: {t}/reports/run1 and {t}/copy hold the same run (r1)"),
    "merge-one-folder": (["merge", "{t}/run2", "--out", "{t}/m"], {}, "merge: give at least two run folders"),
    "merge-out-is-an-input": (["merge", "{t}/run2", "{t}/copy", "--out", "{t}/copy"], {},
                              "merge --out {t}/copy: it is one of the run folders merged"),
    "merge-out-a-file": (["merge", "{t}/run2", "{t}/copy", "--out", "{t}/a-file"], {},
                         "merge --out {t}/a-file: {t}/a-file is not a folder"),
    # run's own flags
    "workers-0": (["run", "-n", "0"], {}, "run: argument -n: expected a whole number of at least 1, got '0'"),
    "workers-negative": (["run", "-n", "-3"], {}, "argument -n: expected a whole number of at least 1, got '-3'"),
    "workers-word": (["run", "-n", "many"], {}, "argument -n: expected a whole number of at least 1, got 'many'"),
    "workers-auto-bad-env": (["run", "-n", "auto"], {"PYTEST_XDIST_AUTO_NUM_WORKERS": "x"},
                             "argument -n: auto: PYTEST_XDIST_AUTO_NUM_WORKERS"),
    "unknown-flag": (["run", "--bogus"], {}, "run: unrecognized arguments: --bogus (see oh-matrix run --help)"),
    "out-history-a-folder": (["run", "--out", "{t}/out-hist/run"], {},
                             "--out {t}/out-hist/run: the history it appends to: {t}/out-hist/history.jsonl: "
                             "not a file"),
    # images: each action's own arguments, before the daemon
    "images-no-action": (["images"], {}, "images: the following arguments are required"),
    "images-unknown-action": (["images", "build-all"], {}, "invalid choice: 'build-all'"),
    "images-build-no-tag": (["images", "build"], {}, "images build: the following arguments are required: TAG"),
    "images-build-flag-of-prune": (["images", "build", "0.62", "--all"], {},
                                   "images build: unrecognized arguments: --all"),
    "images-build-constraints-missing": (["images", "build", "0.62", "--constraints", "{t}/gone.txt"], {},
                                         "--constraints {t}/gone.txt: No such file or directory"),
    "images-build-constraints-official": (["images", "build", "0.62", "--backend", "official", "--constraints",
                                           "{t}/constraints.txt"], {}, "--constraints: only for the pypi backend"),
    "images-build-python312-missing": (["images", "build", "0.62", "--python312", "{t}/gone"], {},
                                       "--python312 {t}/gone: no such file"),
    "images-build-python312-not-312": (["images", "build", "0.62", "--python312", "{t}/py312"], {},
                                       "--python312 {t}/py312: not a CPython 3.12 (it says: cpython 3 11)"),
    "images-prune-latest": (["images", "prune", "latest"], {}, "images prune latest: expected MAJOR.MINOR"),
    "images-prune-bad-tag": (["images", "prune", "--all", "0.62x"], {}, "images prune 0.62x: expected MAJOR.MINOR"),
    "images-prune-all-and-failures": (["images", "prune", "--all", "--failures"], {},
                                      "argument --failures: not allowed with argument --all"),
    "images-save-no-folder": (["images", "save"], {}, "images save: the following arguments are required: --to"),
    "images-save-to-a-file": (["images", "save", "--to", "{t}/a-file"], {},
                              "images save --to {t}/a-file: {t}/a-file is not a folder"),
    "images-load-missing": (["images", "load", "--from", "{t}/nowhere"], {},
                            "images load --from {t}/nowhere: no such folder"),
    "images-load-a-file": (["images", "load", "--from", "{t}/a-file"], {},
                           "images load --from {t}/a-file: not a folder"),
    "images-list-takes-no-tag": (["images", "list", "0.62"], {}, "images list: unrecognized arguments: 0.62"),
    # the knobs (harness/knobs.py), for every command that reads them
    "cache-a-file-run": (["run"], {"OH_MATRIX_CACHE": "{t}/a-file"}, "OH_MATRIX_CACHE={t}/a-file: not a folder"),
    "cache-under-a-file": (["run"], {"OH_MATRIX_CACHE": "{t}/a-file/cache"},
                           "OH_MATRIX_CACHE={t}/a-file/cache: cannot make the cache folder"),
    "cache-default-under-a-file": (["run"], {"OH_MATRIX_CACHE": "", "XDG_CACHE_HOME": "{t}/a-file"},
                                   "the cache folder {t}/a-file/oh-matrix (set OH_MATRIX_CACHE to choose another)"),
    "cache-a-file-images-list": (["images", "list"], {"OH_MATRIX_CACHE": "{t}/a-file"}, "OH_MATRIX_CACHE="),
    "cache-a-file-images-prune": (["images", "prune", "--failures"], {"OH_MATRIX_CACHE": "{t}/a-file"},
                                  "OH_MATRIX_CACHE="),
    "cache-a-file-images-build": (["images", "build", "0.62"], {"OH_MATRIX_CACHE": "{t}/a-file"}, "OH_MATRIX_CACHE="),
    "cache-a-file-clean": (["clean"], {"OH_MATRIX_CACHE": "{t}/a-file"}, "OH_MATRIX_CACHE="),
    "cache-a-file-bisect": (["bisect", "--mode", "host", "--from", "0.62", "--to", "1.0"],
                            {"OH_MATRIX_CACHE": "{t}/a-file"}, "OH_MATRIX_CACHE="),
    "python312-missing": (["run"], {"OH_MATRIX_PYTHON312": "{t}/gone"}, "OH_MATRIX_PYTHON312={t}/gone: no such file"),
    "python312-not-312": (["images", "build", "0.62"], {"OH_MATRIX_PYTHON312": "{t}/py312"},
                          "OH_MATRIX_PYTHON312={t}/py312: not a CPython 3.12"),
    "sources-a-file": (["run"], {"OH_MATRIX_SOURCES": "{t}/a-file"}, "OH_MATRIX_SOURCES='{t}/a-file': not a folder"),
    "run-id-with-a-space": (["run"], {"OH_MATRIX_RUN_ID": "my run"}, "OH_MATRIX_RUN_ID='my run': expected"),
    "boot-slots-0": (["run"], {"OH_MATRIX_BOOT_SLOTS": "0"}, "OH_MATRIX_BOOT_SLOTS='0': expected a whole number"),
    "app-env-no-equals": (["images", "build", "0.62"], {"OH_MATRIX_APP_ENV": "NOEQUALS"},
                          "OH_MATRIX_APP_ENV: 'NOEQUALS'"),
}


@pytest.mark.parametrize(("args", "env", "said"), list(CASES.values()), ids=list(CASES))
def test_a_bad_input_is_one_line_exit_2_before_the_daemon(place: Path, args: list[str], env: dict[str, str],
                                                          said: str) -> None:
    t = str(place)
    r = oh_matrix([a.format(t=t) for a in args], {k: v.format(t=t) for k, v in env.items()}, place)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("oh-matrix: ") and r.stderr.endswith("\n") and r.stderr.count("\n") == 1, r.stderr
    assert said.format(t=t) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "Docker" not in r.stderr and r.stdout == ""


def test_a_corrupt_history_line_is_named_and_the_table_still_printed(place: Path) -> None:
    """Exit 0 with one warning line: the table is true for the runs it shows, and a torn line
    is what a killed run leaves (`run --gate regressions` is the gate that fails on it)."""
    from test_history import run

    from harness.results import history

    path = place / "h" / "history.jsonl"
    history.record(run("r1aaaa", {"a": "pass"}), path)
    with path.open("ab") as f:
        f.write(b'{"run_id": "torn\n' + NOT_UTF8)
    history.record(run("r2bbbb", {"a": "fail"}), path)
    r = oh_matrix(["history", str(place / "h"), "--last", "5"], {}, place)
    assert r.returncode == 0, r.stderr
    assert [ln.split() for ln in r.stdout.splitlines() if ln.startswith("a ")] == [["a", "P", "F"]]
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"oh-matrix: warning: {path}:2: not a run record" in r.stderr and "skipped (and line(s) 3)" in r.stderr


@pytest.mark.parametrize("count", ["auto", "logical", "3"])
def test_workers_as_xdist_users_type_them_are_taken(place: Path, count: str) -> None:
    """Taken: the run goes on to the daemon (here nowhere: exit 3, its one line)."""
    r = oh_matrix(["run", "-n", count], {}, place)
    assert r.returncode == 3 and "Docker is not usable" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_workers_auto_counts_the_cpus_as_xdist_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import cli

    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert cli.workers("auto") == 5 and cli.workers("logical") == 5
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS")
    assert cli.workers("auto") >= 1 and cli.workers("7") == 7


def test_prune_failures_of_one_release_needs_no_daemon(place: Path) -> None:
    failed = place / "cache" / "failed"
    failed.mkdir(parents=True)
    for name in ("0.62.0-aaaaaaaaaa", "0.62.1-bbbbbbbbbb", "0.620.0-cccccccccc", "1.0.0-dddddddddd"):
        (failed / name).write_text("when\nwhy\n")
    r = oh_matrix(["images", "prune", "--failures", "0.62"], {"OH_MATRIX_CACHE": str(place / "cache")}, place)
    assert r.returncode == 0 and r.stdout == "forgot 2 remembered build failures of 0.62\n", r.stderr
    assert sorted(p.name for p in failed.iterdir()) == ["0.620.0-cccccccccc", "1.0.0-dddddddddd"]


def test_the_old_spelling_of_images_build_still_parses() -> None:
    """`oh-matrix images build TAG... --backend pypi`, as noxfile.py calls it."""
    from harness import cli

    args = cli.parser().parse_args(["images", "build", "0.61", "0.62", "latest", "--backend", "pypi"])
    assert (args.func, args.tags, args.backend) == (cli.cmd_images_build, ["0.61", "0.62", "latest"], "pypi")
    args = cli.parser().parse_args(["images", "prune", "--all", "0.62"])
    assert (args.func, args.tags, args.all, args.failures) == (cli.cmd_images_prune, ["0.62"], True, False)
