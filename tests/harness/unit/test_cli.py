"""The CLI's contract for bad input and an unusable daemon: one line, the right exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import matrix

ROOT = Path(__file__).resolve().parents[3]


def oh_matrix(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=120)


def test_malformed_matrix_exit_2_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[targets]]\ntag = '0.62'\n[modes.bridgee]\n")
    r = oh_matrix("run", "--matrix", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "modes.bridgee" in r.stderr


def test_unknown_cell_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "smoke", "--only", "0.99-host")
    assert r.returncode == 2 and "--only 0.99-host" in r.stderr


def test_real_llm_without_a_model_and_key_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "smoke", "--llm", "real", env={"LLM_MODEL": "", "LLM_API_KEY": ""})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--llm real" in r.stderr and "LLM_API_KEY" in r.stderr


def test_bad_app_env_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "smoke", "--app-env", "NOEQUALS")
    assert r.returncode == 2 and "--app-env" in r.stderr


def test_bad_runtime_kwargs_exit_2() -> None:
    r = oh_matrix("run", "--matrix", "smoke", "--app-env", "SANDBOX_DOCKER_RUNTIME_KWARGS={oops")
    assert r.returncode == 2 and "SANDBOX_DOCKER_RUNTIME_KWARGS" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_constraints_file_exit_2_before_docker(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[[targets]]\ntag = '0.62'\nconstraints = 'gone.txt'\n[modes.host]\n")
    r = oh_matrix("run", "--matrix", str(bad), env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "targets[0].constraints: no such file" in r.stderr


def test_docker_unreachable_exit_3(tmp_path: Path) -> None:
    r = oh_matrix("run", "--matrix", "smoke",
                  env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "Docker is not usable" in r.stderr


def test_docker_host_nowhere_exit_3() -> None:
    r = oh_matrix("doctor", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert r.returncode == 3 and "Docker is not usable at tcp://127.0.0.1:1" in r.stderr


def test_socket_without_permission_exit_3(tmp_path: Path) -> None:
    """A user outside the docker group: one line naming the cause, exit 3."""
    import shutil
    import sysconfig

    runuser = shutil.which("runuser")
    assert runuser, "runuser (util-linux) is needed to drop root for this test"
    # The venv's interpreter lives under /root (pyenv), out of nobody's reach: the system
    # Python runs the same code with this venv's packages on its path.
    python = "/usr/bin/python3"
    assert os.access(python, os.X_OK), "the system python3 is needed to run as another user"
    purelib = sysconfig.get_paths()["purelib"]
    for needed in (ROOT / "harness" / "cli.py", Path(purelib) / "docker" / "__init__.py"):
        if subprocess.run([runuser, "-u", "nobody", "--", "test", "-r", str(needed)]).returncode != 0:
            pytest.skip(f"{needed} is not readable by user nobody in this checkout")
    path = f"{ROOT}:{purelib}"
    r = subprocess.run([runuser, "-u", "nobody", "--", python, "-m", "harness.cli", "doctor"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": path})
    assert r.returncode == 3, r.stderr
    assert "permission denied on the socket" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


@pytest.mark.parametrize(("pytest_code", "ours"), [(2, 130), (3, 4), (4, 2), (5, 5)],
                         ids=["interrupted", "internal-error", "usage-error", "no-tests"])
def test_pytests_own_outcomes_get_their_own_exit_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        pytest_code: int, ours: int) -> None:
    """pytest's internal error is not "Docker unusable" (3), its usage error is bad input."""
    import pytest as pytest_module

    from harness import matrix, workflow
    from harness.context import RunContext
    from harness.run.cells import run_cells

    monkeypatch.setattr(pytest_module, "main", lambda *a, **k: pytest_code)
    ctx = RunContext(run_id="r", out=str(tmp_path), matrix_path="m", matrix_text="", backend="pypi",
                     app_env={}, started_at="now")
    m = matrix.load("smoke")
    p = workflow.Prepared(workflow.Inputs(workflow.Options(matrix="smoke"), m, m.cells(), {}), None, ctx)
    assert run_cells(p).stop == ours


def test_exceptions_map_to_one_code_each() -> None:
    from harness import errors, workflow

    assert workflow.exit_code(errors.InputError("x")) == 2
    assert workflow.exit_code(errors.DockerUnavailable("x")) == 3
    assert workflow.exit_code(errors.OutputError("x")) == 1
    assert workflow.exit_code(errors.InfraError("x")) == 1  # not "Docker unusable"
    assert workflow.exit_code(KeyboardInterrupt()) == 130
    assert workflow.exit_code(RuntimeError("a bug")) == 4


def test_a_bad_task_file_exit_2_one_line_before_docker(tmp_path: Path) -> None:
    """The task file is read with the matrix: its error names the file, the task and the key,
    and nothing Docker-related starts (DOCKER_HOST leads nowhere: exit 3 would say it tried)."""
    (tmp_path / "tasks").mkdir()
    bad = tmp_path / "tasks" / "mine.toml"
    bad.write_text('[[tasks]]\nname = "greet"\ninstruction = "Say hi."\n[tasks.check]\nrun = ""\n')
    m = tmp_path / "m.toml"
    m.write_text('[run]\ntasks = ["create-file", "file:tasks/mine.toml"]\n[[targets]]\ntag = "0.62"\n[modes.host]\n')
    r = oh_matrix("run", "--matrix", str(m), env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert f"{bad}: task greet: check.run: empty" in r.stderr
    assert "Docker" not in r.stderr and r.stdout == ""


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # any daemon call would be exit 3


@pytest.mark.parametrize(("knob", "value"), [("OH_MATRIX_BOOT_SLOTS", "abc"), ("OH_MATRIX_INSTALL_SLOTS", "abc"),
                                             ("OH_MATRIX_INSTALL_SLOTS", "0"),
                                             ("OH_MATRIX_REGISTRY", "https://mirror.example/openhands"),
                                             ("OH_MATRIX_AGENT_SERVER_REPOSITORY", "mirror:5000/agent-server:1.0")])
def test_bad_knob_exit_2_before_the_daemon(knob: str, value: str) -> None:
    r = oh_matrix("run", "--matrix", "smoke", env={**NO_DAEMON, knob: value})
    assert r.returncode == 2 and f"{knob}={value!r}" in _one_line(r)


def test_unwritable_out_exit_2_before_the_daemon(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = oh_matrix("run", "--matrix", "smoke", "--out", str(a_file / "run"), env=NO_DAEMON)
    assert r.returncode == 2 and f"--out {a_file / 'run'}" in _one_line(r) and "not a folder" in r.stderr
    assert not (a_file.parent / "run").exists()


@pytest.mark.parametrize(("args", "said"), [
    (["--remedies", "--remedy", "rootless-host-aliases"], "--remedy rootless-host-aliases: no such remedy"),
    (["--remedy", "docker-host-addr"], "--remedy docker-host-addr: only with --remedies"),
])
def test_a_bad_remedy_name_is_exit_2_before_the_daemon(args: list[str], said: str) -> None:
    r = oh_matrix("run", "--matrix", "smoke", *args, env=NO_DAEMON)
    assert r.returncode == 2 and said in _one_line(r), r.stderr


def test_only_the_named_remedies_are_tried() -> None:
    from harness import remedies
    from harness.model import Cause, CellResult, Connect, Direction, Verdict

    failed = CellResult(id="0.62-bridge", tag="0.62", mode="bridge", api="v0",
                        connect=Connect(verdict=Verdict.FAIL, cause=Cause.DNS_UNRESOLVED, direction=Direction.FORWARD))
    ran: list[dict[str, str]] = []

    def rerun(change: remedies.Change, alone: bool) -> CellResult:
        ran.append(change.env)
        return failed

    tried = remedies.search(failed, remedies.Context(gateway="172.17.0.1", mode="bridge"), rerun,
                            only=frozenset({"docker-host-addr"}))
    assert [t.name for t in tried] == ["docker-host-addr"] and ran == [{"DOCKER_HOST_ADDR": "172.17.0.1"}]


@pytest.mark.parametrize("tag", ["0.62x", "banana", "9.1"])
def test_images_build_bad_tag_exit_2_without_a_daemon(tag: str) -> None:
    r = oh_matrix("images", "build", tag, env=NO_DAEMON)
    assert r.returncode == 2 and tag in _one_line(r)


def test_version() -> None:
    r = oh_matrix("--version")
    assert r.returncode == 0 and r.stdout.startswith("oh-matrix ")


CRASH = """import sys
from harness import cli
class Broken(Exception):
    def __str__(self): raise ValueError("str() of a broken exception")
def bug(args): raise {raise_}
cli.cmd_doctor = bug
sys.exit(cli.main(["doctor"]))
"""


def crash(tmp_path: Path, cache: str, raise_: str = "RuntimeError('a bug')") -> subprocess.CompletedProcess[str]:
    """A harness bug, in a process of its own (as the console script has it): `doctor` made to raise."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", CRASH.format(raise_=raise_)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120,
                          env={**os.environ, **NO_DAEMON, "OH_MATRIX_CACHE": cache, "TMPDIR": str(tmp_path / "tmp")})


def _crash_file(r: subprocess.CompletedProcess[str]) -> Path:
    assert r.returncode == 4, r.stderr
    return Path(_one_line(r).rsplit("full traceback: ", 1)[1].rstrip(")\n"))


def test_unexpected_exception_exit_4_one_line_and_the_traceback_in_a_file(tmp_path: Path) -> None:
    """A harness bug is one line naming the exception and where its full traceback was
    written (the cache's crashes/ folder), exit 4."""
    r = crash(tmp_path, str(tmp_path / "cache"))
    assert "oh-matrix: internal error: RuntimeError: a bug" in r.stderr
    written = _crash_file(r)
    assert written.parent == tmp_path / "cache" / "crashes" and "Traceback" in written.read_text()


@pytest.mark.parametrize("cache", ["a-file", "a-file/below"])
def test_the_crash_handler_survives_a_cache_it_cannot_use(tmp_path: Path, cache: str) -> None:
    """OH_MATRIX_CACHE a file (or under one): the traceback goes to the temporary folder, and
    the handler itself raises nothing (a second traceback on the terminal was the bug)."""
    (tmp_path / "a-file").write_text("")
    written = _crash_file(crash(tmp_path, str(tmp_path / cache)))
    assert written.parent == tmp_path / "tmp" and "RuntimeError: a bug" in written.read_text()


def test_an_exception_whose_str_fails_is_still_one_line(tmp_path: Path) -> None:
    r = crash(tmp_path, str(tmp_path / "cache"), raise_="Broken()")
    assert "internal error: Broken (full traceback: " in r.stderr
    assert "Broken" in _crash_file(r).read_text()


def test_the_crash_handler_raises_nothing_when_no_folder_takes_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from harness import cli

    def full(self: Path, *a: object, **k: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    monkeypatch.setattr(cli, "version", lambda: 1 / 0)  # even its own first line failing
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        said = cli._write_traceback(argparse.Namespace(out=None))
    assert said.startswith("(nowhere writable: printed below)") and "RuntimeError: a bug" in said


def test_init_copies_a_shipped_matrix_with_its_task_files_and_never_overwrites(tmp_path: Path) -> None:
    r = oh_matrix("init", "example", "--to", str(tmp_path / "mine"))
    assert r.returncode == 0, r.stderr
    copied = tmp_path / "mine" / "example.toml"
    assert copied.read_text() == (ROOT / "harness" / "matrices" / "example.toml").read_text()
    assert (tmp_path / "mine" / "tasks" / "example.toml").is_file()  # the task file it names, beside it
    # the copy loads on its own: its file: path still resolves
    assert matrix.load(copied).tasks
    again = oh_matrix("init", "example", "--to", str(tmp_path / "mine"))
    assert again.returncode == 2 and "already exist" in again.stderr and again.stderr.count("\n") == 1
    assert oh_matrix("init", "nope").returncode == 2


def test_report_says_it_re_renders(tmp_path: Path) -> None:
    from test_report import real_run

    (tmp_path / "results.json").write_text(json.dumps(real_run()))
    r = oh_matrix("report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"re-rendered from {tmp_path / 'results.json'}" in r.stdout and "replacing:" in r.stdout
    assert (tmp_path / "report.html").is_file()


@pytest.mark.parametrize(("args", "code", "said"), [
    (["-k", "host and"], 2, "-k 'host and': refused by pytest: Wrong expression passed to '-k'"),
    (["--", "--bogus"], 2, "--bogus: refused by pytest: unrecognized arguments: --bogus"),
    (["--", "-p", "nosuch"], 2, 'refused by pytest: Error importing plugin "nosuch"'),
    (["-k", "no-such-cell"], 5, "no cell or task test was selected"),
])
def test_k_and_pytest_arguments_are_checked_before_the_daemon(args: list[str], code: int, said: str,
                                                              tmp_path: Path) -> None:
    """pytest's own verdict on -k and the arguments after --, from a collect-only pass:
    before any image (a cold cache here: nothing to build from) and before the daemon."""
    r = oh_matrix("run", "--matrix", "smoke", *args, env={**NO_DAEMON, "OH_MATRIX_CACHE": str(tmp_path)})
    assert r.returncode == code and said in _one_line(r), r.stderr
    assert r.stdout == ""


def test_a_selection_that_survives_goes_on_to_the_daemon() -> None:
    r = oh_matrix("run", "--matrix", "smoke", "-k", "host-gateway and create-file", "--", "-x", env=NO_DAEMON)
    assert r.returncode == 3 and "Docker is not usable" in _one_line(r)


def test_both_front_doors_take_the_same_options() -> None:
    """One table (harness/options.py) for `oh-matrix run` and plain `pytest --oh-matrix`
    (each flag prefixed there: test_plugin.py)."""
    from harness import options

    cli = oh_matrix("run", "--help")
    plain = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
    for o in options.RUN:
        assert o.flag in cli.stdout and o.named(options.PYTEST_PREFIX)[0] in plain.stdout, o.flag
        assert " ".join(o.help.split()[:4]) in " ".join(plain.stdout.split()), o.flag


def test_json_of_doctor_compare_and_images_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], synthetic_run: Any) -> None:
    """`--json`: what the command prints, machine-readable, and the same exit code."""
    from harness import cli
    from harness.errors import HarnessError
    from harness.host import docker_host, doctor
    from harness.images import pulled, wheels
    from harness.output import write_run

    def said(*args: str) -> tuple[int, Any]:
        code = cli.main(list(args))
        return code, json.loads(capsys.readouterr().out)

    monkeypatch.setattr(doctor, "checks", lambda: [doctor.Finding("daemon", "27.0", "Docker Engine", warn=True)])

    def no_python() -> str:
        raise HarnessError("no python3.12 here")

    monkeypatch.setattr(wheels, "find_python312", no_python)
    assert said("doctor", "--json") == (0, {
        "findings": [{"name": "daemon", "value": "27.0", "meaning": "Docker Engine", "warn": True}],
        "python312": {"name": "python3.12 (pypi backend)", "value": "no python3.12 here", "warn": True}})

    write_run(tmp_path / "a", synthetic_run("r1", "h", "27.0", {"0.62-host": "pass", "0.62-bridge": "fail"}))
    write_run(tmp_path / "b", synthetic_run("r2", "h", "27.0", {"0.62-host": "fail"}))
    code, data = said("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    assert code == 1 and data["same"] is False
    assert data["differences"] == [
        {"cell": "0.62-host", "what": "connect", "first": "pass", "second": "fail connect-timeout"},
        {"cell": "0.62-bridge", "what": None, "first": "run", "second": None}]

    class Image:
        def __init__(self) -> None:
            self.tags, self.labels = ["oh-matrix/openhands:0.62.0-x"], {"oh-matrix.image": "app"}
            self.short_id, self.attrs = "sha256:0123456789ab", {"Size": 1.9e9}

    class Client:
        class images:  # docker-py's attribute
            @staticmethod
            def list(filters: dict[str, str]) -> list[Image]:
                return [Image()]

    monkeypatch.setattr(docker_host, "client", lambda: Client())
    monkeypatch.setattr(pulled, "remembered", dict)
    assert said("images", "list", "--json") == (0, {"images": [
        {"image": "oh-matrix/openhands:0.62.0-x", "kind": "app", "release": "-", "deps": "-", "size_mb": 1900,
         "id": "0123456789ab", "sources": "-"}]})
