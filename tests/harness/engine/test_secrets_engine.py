"""A canary secret in every place a user gives one (an env file, compose's `environment`, a
docker run line's `-e`, `--app-env`, the LLM key, a task file's secret), and every outcome a
run can have without an OpenHands release made to happen on purpose: an input error, an image
that cannot be had, an app that dies at launch, an API that answers wrongly, the tasks that are
then skipped, an interrupt mid-cell, a worker killed mid-cell, a crash of the harness itself.
After each, everything the run wrote (its folder, junit.xml, progress.log, the cache's logs and
crash files) and printed is searched for the canary, and a find names the file and line.
pytest prints its worst here (-vv, locals, long tracebacks): a fixture's or parameter's repr
once carried an env file's token into the terminal and junit.xml on the error path.

The pass and fail of a real release, with a fix proven and written, are the release test's
(test_release_deployments.py), which greps its one run the same way (`leaks`)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.images.base import BaseImage

ROOT = Path(__file__).resolve().parents[3]
CANARY = f"cnry{uuid.uuid4().hex[:12]}"  # every secret below starts with it: one search finds any
# its tag makes it a 0.62 (V0) own image (its label says so too); its name is this process's own,
# since xdist may give this module's tests to both workers, and each removes its image when done
APP = f"oh-matrix-test/canary-app-{uuid.uuid4().hex[:8]}:0.62"
PYTEST_AT_ITS_WORST = ["--", "-vv", "--showlocals", "--tb=long", "--fulltrace"]


def leaks(texts: dict[str, str], *folders: Path, canary: str = CANARY, since: float = 0.0) -> list[str]:
    """`where:line: text` for each line holding the canary, in `texts` (what was printed, by
    name) and in every file under `folders` (changed since `since`: a shared cache's)."""
    found = [f"{name}:{i}: {line[:200]}" for name, text in texts.items()
             for i, line in enumerate(text.splitlines(), 1) if canary in line]
    for folder in folders:
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since):
            lines = f.read_bytes().decode(errors="replace").splitlines()
            found += [f"{f}:{i}: {line[:200]}" for i, line in enumerate(lines, 1) if canary in line]
    return found


DEPLOYMENTS = {
    # its image is on no daemon, and the pypi backend pulls nothing: error image-unavailable
    "absent.yml": "image: oh-matrix-test/canary-absent:0.62\n",
    # the app prints every secret it was given and exits: fail app-exited, with that log as evidence
    "exits.yml": f"image: {APP}\n    command: [sh, -c, 'echo read $$GITHUB_TOKEN $$MY_SETTING $$OTHER $$APPV; "
                 "exit 3']\n",
    # something answers on 3000, but not OpenHands' API: fail api-error, the app's log quoting a secret
    "api.yml": f"image: {APP}\n    command: [sh, -c, 'echo serving with $$GITHUB_TOKEN; "
               "exec python3 -m http.server 3000']\n",
    # an app whose API never answers: a cell that is still booting when it is interrupted or killed
    "waits.yml": f"image: {APP}\n",
}


@pytest.fixture(scope="module")
def app_image(client: docker.DockerClient, base_image: BaseImage) -> Iterator[str]:
    recipe = (f"FROM {base_image.ref}\nLABEL org.opencontainers.image.version=0.62.0 oh-matrix.test=1\n"
              'CMD ["sleep", "infinity"]\n')
    client.images.build(fileobj=io.BytesIO(recipe.encode()), tag=APP, rm=True, network_mode="none")
    yield APP
    client.images.remove(APP, force=True)


@pytest.fixture
def matrix(tmp_path: Path, app_image: str) -> Path:
    """The deployments above, each with an env file (a token and a setting of no telling name)
    and a compose `environment` entry; a docker run line with `-e`; a task file with a secret."""
    (tmp_path / ".env").write_text(f"GITHUB_TOKEN={CANARY}-envfile-token\nMY_SETTING={CANARY}-envfile-setting\n")
    for name, service in DEPLOYMENTS.items():
        (tmp_path / name).write_text(f"services:\n  oh:\n    {service}    env_file: [.env]\n"
                                     f"    environment: [OTHER={CANARY}-compose-environment]\n"
                                     "    ports: ['3000:3000']\n")
    (tmp_path / "tasks.toml").write_text('[[tasks]]\nname = "canary-task"\ninstruction = "say hi"\n'
                                         'secrets = ["TASK_CANARY"]\n[tasks.check]\nmessage_contains = "hi"\n')
    line = f"docker run -e LINE={CANARY}-dash-e --env-file .env -p 3000:3000 {APP}"
    text = ('[run]\ntasks = ["file:tasks.toml"]\napp_budget = 90\nconnect_budget = 30\n[[targets]]\ntag = "0.62"\n'
            + "".join(f'[deployments.{n.removesuffix(".yml")}]\ncompose = "{n}"\n' for n in DEPLOYMENTS)
            + f'[deployments.line]\ndocker_run = "{line}"\n')
    (tmp_path / "m.toml").write_text(text)
    return tmp_path / "m.toml"


def env(tmp_path: Path) -> dict[str, str]:
    """The run's environment: its own cache (searched after), the task's secret and an LLM key
    (no LLM_MODEL: the scripted LLM runs, and the key must be no less secret for it)."""
    return {**os.environ, "OH_MATRIX_CACHE": str(tmp_path / "cache"), "TASK_CANARY": f"{CANARY}-task-secret",
            "LLM_API_KEY": f"{CANARY}-llm-key"}


def start(matrix: Path, out: Path, *args: str, workers: int = 2) -> subprocess.Popen[str]:
    """`oh-matrix run` with `--app-env` holding a canary too, in a session of its own (so a
    Ctrl-C reaches it and its workers as a terminal's would), with Python's Ctrl-C handler
    whatever this process inherited."""
    cmd = [sys.executable, "-m", "harness.cli", "run", "--matrix", str(matrix), "--backend", "pypi",
           "--out", str(out), "-n", str(workers), "--app-env", f"APPV={CANARY}-app-env", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env(matrix.parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, str]]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, {"stdout": out, "stderr": err}


def booting(out: Path, proc: subprocess.Popen[str]) -> None:
    """Until the cell's app has started (its phase line in progress.log)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its app started"
        log = out / "progress.log"
        if log.exists() and " started from " in log.read_text():
            return
        time.sleep(0.5)
    raise AssertionError("the app never started")


def test_errors_failures_and_skips_print_and_write_no_secret(matrix: Path) -> None:
    """error at the image, fail at launch and at the API, the tasks skipped: the user's case
    (an own-image cell's error printed its env file's token) and its neighbours."""
    out = matrix.parent / "run"
    only = [a for c in ("own-absent", "own-exits", "own-api") for a in ("--only", c)]
    code, printed = finish(start(matrix, out, *only, *PYTEST_AT_ITS_WORST))
    assert code == 1, printed["stdout"][-3000:] + printed["stderr"][-2000:]
    said = printed["stdout"]
    for cell, verdict in (("own-absent", "ERROR image-unavailable"), ("own-exits", "FAIL app-exited"),
                          ("own-api", "FAIL api-error")):
        assert f"{cell} " in said and verdict in said.split(cell, 1)[1], (cell, said[-3000:])
    assert "SKIPPED" in said  # the task tests of cells that never connected
    assert "cell = Cell('own-absent')" in said  # pytest's report of the error shows the parameter: by its id
    assert "--env-file .env -e OTHER -e APPV" in said  # the line people read names what it does not show
    assert (out / "junit.xml").exists()
    assert leaks(printed, out, matrix.parent / "cache") == []


def test_an_input_error_names_the_setting_and_not_its_value(matrix: Path) -> None:
    """A malformed `--app-env` and OH_MATRIX_APP_ENV: exit 2, one line naming the key."""
    out = matrix.parent / "run"
    for flags, knob in (([f"NOT-A-NAME={CANARY}-bad-app-env"], ""), (["APPV=1"], f"NOT-A-NAME={CANARY}-bad-knob")):
        bad = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(matrix), "--backend",
                              "pypi", "--out", str(out), *(a for f in flags for a in ("--app-env", f))],
                             cwd=ROOT, env={**env(matrix.parent), "OH_MATRIX_APP_ENV": knob},
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "'NOT-A-NAME'=..." in bad.stderr, bad.stderr
        assert leaks({"stdout": bad.stdout, "stderr": bad.stderr}, out, matrix.parent / "cache") == []


def test_an_interrupt_mid_cell_prints_and_writes_no_secret(matrix: Path) -> None:
    out = matrix.parent / "run"
    proc = start(matrix, out, "--only", "own-waits", *PYTEST_AT_ITS_WORST)
    booting(out, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the run and its workers
    code, printed = finish(proc, timeout=180)
    assert code == 130, printed["stdout"][-3000:] + printed["stderr"][-2000:]
    assert (out / "results.json").exists()  # an interrupted run still writes what it found
    assert leaks(printed, out, matrix.parent / "cache") == []


def test_a_worker_killed_mid_cell_prints_and_writes_no_secret(matrix: Path) -> None:
    out = matrix.parent / "run"
    proc = start(matrix, out, "--only", "own-waits", "-k", "test_connect", *PYTEST_AT_ITS_WORST)
    booting(out, proc)
    workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
    for pid in [int(p) for p in workers.stdout.split()]:
        os.kill(pid, signal.SIGKILL)
    code, printed = finish(proc)
    assert code == 1 and "crashed" in printed["stdout"], printed["stdout"][-3000:]
    assert "worker running this cell died" in (out / "results.json").read_text()
    assert leaks(printed, out, matrix.parent / "cache") == []


CRASH = """
import sys
from harness import cli, workflow

def bug(state):
    raise RuntimeError("a bug of the harness's, after the inputs were read")

workflow.docker = bug  # the step after the inputs
sys.argv = ["oh-matrix", *sys.argv[1:]]
sys.exit(cli.main())
"""


def test_a_crash_of_the_harness_writes_no_secret_in_its_crash_file(matrix: Path) -> None:
    """exit 4 and the full traceback in the cache's crashes/ folder, with the command line that
    ran (its --app-env value is the canary)."""
    run = subprocess.run([sys.executable, "-c", CRASH, "run", "--matrix", str(matrix), "--backend", "pypi",
                          "--app-env", f"APPV={CANARY}-app-env", "--only", "own-absent"],
                         cwd=ROOT, env=env(matrix.parent), capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stderr
    [crash] = (matrix.parent / "cache" / "crashes").iterdir()
    assert "--app-env APPV=<redacted>" in crash.read_text() and "RuntimeError" in crash.read_text()
    assert leaks({"stdout": run.stdout, "stderr": run.stderr}, matrix.parent / "cache") == []
