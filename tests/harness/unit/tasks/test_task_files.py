"""Task files (docs/task-files.md): the parser, its published JSON Schema (checked against the
parser on good and bad files), the upstream catalog, matrices that name tasks, skips with
their reasons, and the checks themselves, run by a real shell standing in for the runtime."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness import generations, matrix, tasks
from harness.errors import InputError, TaskSetupError
from harness.model import CellResult, Connect, ImageSet, TaskResult
from harness.openhands import SAID_KINDS, Turn
from harness.secrets import redact_result
from harness.tasks import Where, llm, taskfile

ROOT = Path(__file__).resolve().parents[4]
SCHEMA = json.loads((ROOT / "docs" / "task-file.schema.json").read_text())
EXAMPLE = matrix.PACKAGED / "tasks" / "example.toml"
UPSTREAM = ROOT / "harness" / "tasks" / "catalogs" / "upstream.toml"

GOOD_TASK = '''
[[tasks]]
name = "t"
instruction = "Do it."
[tasks.check]
run = "true"
'''


def schema_ok(text: str) -> bool:
    try:
        jsonschema.validate(tomllib.loads(text), SCHEMA)
    except jsonschema.ValidationError:
        return False
    return True


def parse_error(text: str, origin: str = "/x/mine.toml") -> str:
    with pytest.raises(InputError) as e:
        taskfile.parse(text, origin, "file:mine.toml")
    return str(e.value)


# -- good files ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [EXAMPLE, UPSTREAM], ids=["example", "upstream"])
def test_the_shipped_task_files_parse_and_match_the_schema(path: Path) -> None:
    text = path.read_text()
    assert schema_ok(text)
    specs = taskfile.parse(text, str(path), "x")
    assert specs and all(s.check for s in specs)


def test_the_example_has_one_task_per_kind_of_check() -> None:
    specs = {s.name: s for s in taskfile.parse(EXAMPLE.read_text(), str(EXAMPLE), "file:tasks/example.toml")}
    assert list(specs) == ["sum-numbers", "greeting-file", "count-words"]
    assert specs["sum-numbers"].check.run and specs["sum-numbers"].check.output == "108"
    assert specs["greeting-file"].check.file == "greeting.txt"
    assert specs["count-words"].check.message_contains == ("9 words",)
    assert all(s.steps for s in specs.values())  # all three run under the scripted LLM


def test_the_schemas_names_are_the_registries() -> None:
    task = SCHEMA["$defs"]["task"]["properties"]
    assert task["generations"]["items"]["enum"] == list(generations.GENERATIONS)
    assert task["needs"]["items"]["enum"] == list(generations.CAPABILITIES)
    assert SCHEMA["$defs"]["check"]["properties"]["messages_from"]["items"]["enum"] == list(SAID_KINDS)
    kinds = [next(iter(k for k in s["required"] if k in taskfile.STEP_KINDS)) for s in SCHEMA["$defs"]["step"]["oneOf"]]
    assert kinds == list(taskfile.STEP_KINDS)
    assert sorted(task) == sorted(taskfile.TASK_KEYS)
    assert sorted(SCHEMA["$defs"]["check"]["properties"]) == sorted(taskfile.CHECK_KEYS)


GOOD = {
    "minimal": GOOD_TASK,
    "every key": '''
[[tasks]]
name = "all-keys-1"
instruction = "x"
budget = 30.5
generations = ["v0"]
needs = ["ipython"]
secrets = ["MY_TOKEN"]
setup = ["git init"]
source = { repo = "o/r", commit = "abc", path = "p.py" }
[[tasks.files]]
path = "a.txt"
content = ""
[tasks.check]
run = "cat a.txt"
exit_code = 3
output = ""
output_contains = "a"
file = "a.txt"
content = ""
message_contains = ["x", "y"]
messages_from = ["finish"]
[[tasks.steps]]
bash = "ls"
[[tasks.steps]]
create = "b"
text = ""
[[tasks.steps]]
replace = "b"
old = "x"
new = ""
[[tasks.steps]]
ipython = "print(1)"
[[tasks.steps]]
say = 'got \\1'
from_output = '(\\d+)'
''',
    "finish last": GOOD_TASK + '[[tasks.steps]]\nbash = "ls"\n[[tasks.steps]]\nfinish = ""\n',
    "ipython on v0 only": GOOD_TASK.replace('instruction = "Do it."', 'instruction = "Do it."\ngenerations = ["v0"]')
    + '[[tasks.steps]]\nipython = "1"\n',
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_good_files_pass_the_parser_and_the_schema(text: str) -> None:
    assert taskfile.parse(text, "m.toml", "file:m.toml")
    assert schema_ok(text)


# -- bad files: one line naming the file, the task and the key -------------------------------

def task(**extra: str) -> str:
    """A task table with `extra` lines put after its instruction."""
    body = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return f'[[tasks]]\nname = "t1"\ninstruction = "Do it."\n{body}\n'


CHECK = '[tasks.check]\nrun = "true"\n'
# (the file's text, what the one line must say, whether the schema can say it too)
BAD: dict[str, tuple[str, str, bool]] = {
    "unknown key": (task(colour='"red"') + CHECK, "task t1: colour: unknown key", True),
    "unknown top-level key": ("title = 'x'\n" + task() + CHECK, "title: unknown key", True),
    "unknown check key": (task() + '[tasks.check]\nrun = "true"\nexpect = 1\n', "task t1: check.expect: unknown key",
                          True),
    "missing check": (task(), "task t1: check: missing", True),
    "empty check command": (task() + '[tasks.check]\nrun = ""\n', "task t1: check.run: empty", True),
    "blank check command": (task() + '[tasks.check]\nrun = "  "\n', "task t1: check.run: empty", True),
    "a check of none of the kinds": (task() + "[tasks.check]\n", "task t1: check: none of run, file or "
                                                                   "message_contains", True),
    "exit_code without run": (task() + '[tasks.check]\nexit_code = 1\nfile = "a"\ncontent = ""\n',
                              "task t1: check.exit_code: needs check.run", True),
    "file without content": (task() + '[tasks.check]\nfile = "a"\n', "task t1: check.content: check.file and "
                                                                      "check.content go together", True),
    "messages_from without message_contains": (task() + '[tasks.check]\nrun = "true"\nmessages_from = ["message"]\n',
                                               "task t1: check.messages_from: needs check.message_contains", True),
    "unknown message kind": (task() + '[tasks.check]\nmessage_contains = "x"\nmessages_from = ["shout"]\n',
                             "task t1: check.messages_from: expected a non-empty list", True),
    "exit status out of range": (task() + '[tasks.check]\nrun = "x"\nexit_code = 300\n',
                                 "task t1: check.exit_code: expected an exit status 0-255", True),
    "empty setup command": (task(setup='["ls", ""]') + CHECK, "task t1: setup[1]: empty command", True),
    "unknown generation": (task(generations='["v2"]') + CHECK, "task t1: generations[0]: unknown generation 'v2'",
                           True),
    "unknown need": (task(needs='["gpu"]') + CHECK, "task t1: needs[0]: unknown need 'gpu'", True),
    "bad secret name": (task(secrets='["MY-TOKEN"]') + CHECK, "task t1: secrets[0]: 'MY-TOKEN' is not an", True),
    "bad name": ('[[tasks]]\nname = "T01"\ninstruction = "x"\n' + CHECK, "tasks[0]: name: expected lowercase", True),
    "no instruction": ('[[tasks]]\nname = "t1"\n' + CHECK, "task t1: instruction: missing", True),
    "negative budget": (task(budget="-5") + CHECK, "task t1: budget: expected a positive number", True),
    "a step of two kinds": (task() + CHECK + '[[tasks.steps]]\nbash = "ls"\nipython = "1"\n',
                            "task t1: steps[0]: expected exactly one of", True),
    "a step of no kind": (task() + CHECK + '[[tasks.steps]]\ntext = "x"\n', "task t1: steps[0]: expected exactly one",
                          True),
    "create without text": (task() + CHECK + '[[tasks.steps]]\ncreate = "f"\n', "task t1: steps[0].text: missing",
                            True),
    "empty bash step": (task() + CHECK + '[[tasks.steps]]\nbash = ""\n', "task t1: steps[0].bash: empty", True),
    "no steps in steps": (task(steps="[]") + CHECK, "task t1: steps: expected at least one", True),
    # The parser's own rules (the schema cannot say them):
    "duplicate names": (task() + CHECK + task() + CHECK, "task t1: name: duplicate task name 't1'", False),
    "say before the end": (task() + CHECK + "[[tasks.steps]]\nsay = 'x'\n[[tasks.steps]]\nbash = 'ls'\n",
                           "task t1: steps[0]: a say step ends the agent's turn: it must be the last step", False),
    "an ipython step for v1": (task() + CHECK + '[[tasks.steps]]\nipython = "print(1)"\n',
                               "task t1: steps[0]: an ipython step, which generation v1 cannot run (the V1 SDK "
                               "agent has no IPython tool", False),
    "a bad regular expression": (task() + CHECK + "[[tasks.steps]]\nsay = 'x'\nfrom_output = '(('\n",
                                 "task t1: steps[0].from_output: not a regular expression", False),
    "a say of a group the regex lacks": (task() + CHECK + "[[tasks.steps]]\nsay = 'n=\\2'\nfrom_output = '(\\d+)'\n",
                                         "task t1: steps[0].say: refers to group 2, which from_output does not have",
                                         False),
    "not TOML": ("[[tasks]\n", "invalid TOML", False),
}


@pytest.mark.parametrize(("text", "says", "schema_says_too"), BAD.values(), ids=BAD.keys())
def test_bad_files_are_one_line_naming_file_task_and_key(text: str, says: str, schema_says_too: bool) -> None:
    msg = parse_error(text)
    assert msg.startswith("/x/mine.toml: ") and says in msg, msg
    assert "\n" not in msg
    if schema_says_too:
        assert not schema_ok(text), f"the schema accepts what the parser rejects: {says}"


def test_an_ipython_step_is_fine_where_the_task_needs_ipython_or_runs_on_v0_only() -> None:
    step = '[[tasks.steps]]\nipython = "print(1)"\n'
    assert taskfile.parse(task(needs='["ipython"]') + CHECK + step, "m", "x")[0].steps == ({"do": "ipython",
                                                                                            "code": "print(1)"},)
    assert taskfile.parse(task(generations='["v0"]') + CHECK + step, "m", "x")


# -- the upstream catalog ------------------------------------------------------------------------

UPSTREAM_COMMIT = "e0d26c1f4e51d20b0f04f83b000e819112b48cc3"  # parent of #11653, which removed the tests


def upstream() -> dict[str, taskfile.Spec]:
    return {s.name: s for s in taskfile.parse(tasks.upstream_text(), tasks.UPSTREAM_FILE, "upstream")}


def test_the_upstream_catalog_is_t01_to_t07_with_their_sources() -> None:
    specs = upstream()
    assert list(specs) == ["t01-fix-typos", "t02-hello-sh", "t03-ipython-file", "t04-git-staging",
                           "t05-browse-local", "t06-pr-browsing", "t07-interactive"]
    for name, s in specs.items():
        assert s.source["repo"] == "OpenHands/OpenHands" and s.source["commit"] == UPSTREAM_COMMIT
        assert s.source["path"].startswith(f"evaluation/integration_tests/tests/{name[:3]}_"), s.source
    assert specs["t03-ipython-file"].needs == ("ipython",)
    assert specs["t05-browse-local"].needs == ("browser",)
    assert specs["t06-pr-browsing"].needs == ("internet",) and specs["t06-pr-browsing"].steps is None


def test_the_upstream_instructions_and_seeds_are_verbatim() -> None:
    """Lengths and hashes as read from the upstream files (REPORT of the research: t01 52
    characters with no trailing newline, t05's page 1895 characters, t07's script 243)."""
    s = upstream()
    lengths = {"t01-fix-typos": 21, "t02-hello-sh": 63, "t03-ipython-file": 91, "t04-git-staging": 79,
               "t05-browse-local": 63, "t06-pr-browsing": 119, "t07-interactive": 111}
    assert {n: len(x.instruction) for n, x in s.items()} == lengths
    assert s["t01-fix-typos"].instruction == "Fix typos in bad.txt."
    bad = s["t01-fix-typos"].files[0].content
    assert hashlib.sha256(bad.encode()).hexdigest() == \
        "b5d723fbe6932bb585e63e715c878c2db8f8781cbef7638e014e4740b1fcdf62"
    page = s["t05-browse-local"].files[0].content
    assert len(page) == 1895 and page.startswith("\n<!DOCTYPE") and page.endswith("</html>\n")
    assert hashlib.sha256(page.encode()).hexdigest() == \
        "2e0a96743fe0f49ead02ddbe10971d772ea1b3803f37bdd7ba9adab5b30147fa"
    script = s["t07-interactive"].files[0].content
    assert len(script) == 244 and script.endswith("{secret}\")\n")  # 243 + the newline the action server adds
    assert s["t04-git-staging"].setup == ("mkdir -p /workspace", "git init", "echo 'print(\"hello world\")' > hello.py",
                                          "git add hello.py")


def test_the_upstream_checks_read_what_upstream_read() -> None:
    s = upstream()
    assert s["t01-fix-typos"].check.output == "This is a stupid typo.\nReally?\nNo more typos!\nEnjoy!"
    assert s["t02-hello-sh"].check.output == "hello"
    assert s["t03-ipython-file"].check.output_contains == "hello world"
    assert s["t04-git-staging"].check.output_contains == "nothing to commit, working tree clean"
    assert s["t05-browse-local"].check.messages_from == ("message", "finish_outputs")  # not the thought
    assert s["t07-interactive"].check.messages_from == ("message", "finish_outputs", "finish_thought")
    assert s["t07-interactive"].check.message_contains == ("707",)
    assert int(hashlib.sha256(b"25").hexdigest()[:8], 16) % 1000 == 707  # SECRET_NUMBER
    assert s["t06-pr-browsing"].check.message_contains == ("non-commercial", "MIT", "Apache 2.0")


# -- matrices name tasks -----------------------------------------------------------------------

def matrix_with(tmp_path: Path, entries: list[str]) -> matrix.Matrix:
    m = tmp_path / "m.toml"
    m.write_text(f"[run]\ntasks = {json.dumps(entries)}\n[[targets]]\ntag = '0.62'\n[modes.host]\n")
    return matrix.load(m)


def test_a_matrix_names_built_in_upstream_and_file_tasks(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "t.toml").write_text(GOOD_TASK.replace('"t"', '"my-task"'))
    m = matrix_with(tmp_path, ["create-file", "t07-interactive", "file:mine/t.toml"])
    assert m.tasks == ("create-file", "t07-interactive", "my-task")
    assert [t.catalog for t in m.task_defs] == ["builtin", "upstream", "file:mine/t.toml"]
    assert m.files == {str(tmp_path / "mine" / "t.toml"): (tmp_path / "mine" / "t.toml").read_text()}
    # a worker parses the matrix again from the texts the controller read, not from the disk
    (tmp_path / "mine" / "t.toml").unlink()
    again = matrix.parse(tomllib.loads(m.text), m.path, m.files)
    assert again.tasks == m.tasks


def test_upstream_alone_is_the_whole_catalog(tmp_path: Path) -> None:
    assert matrix_with(tmp_path, ["upstream"]).tasks == tuple(upstream())
    assert matrix.load(matrix.PACKAGED / "upstream.toml").tasks == tuple(upstream())
    example = matrix.load(matrix.PACKAGED / "example.toml")
    assert example.tasks == ("sum-numbers", "greeting-file", "count-words")


@pytest.mark.parametrize(("entries", "says"), [
    (["t01-fix-typos", "upstream"], "run.tasks[1]: task 't01-fix-typos' twice (from upstream and from upstream)"),
    (["create-file", "file:dup.toml"], "run.tasks[1]: task 'create-file' twice (from builtin and from file:dup.toml)"),
    (["nope"], "run.tasks[0]: unknown task 'nope'"),
    (["file:gone.toml"], "run.tasks[0]: file:gone.toml: cannot read task file"),
    (["file:bad.toml"], "bad.toml: task t1: check: missing"),
])
def test_bad_task_entries_are_input_errors(tmp_path: Path, entries: list[str], says: str) -> None:
    (tmp_path / "dup.toml").write_text(GOOD_TASK.replace('"t"', '"create-file"'))
    (tmp_path / "bad.toml").write_text(task())
    with pytest.raises(InputError) as e:
        matrix_with(tmp_path, entries)
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    if not says.startswith("bad.toml"):
        assert str(e.value).startswith(str(tmp_path / "m.toml")), str(e.value)


# -- honest scope: skips with the reason -------------------------------------------------------

def images(backend: str, lacks: list[str]) -> ImageSet:
    notes = [f"lacks {n}: why {n}" for n in lacks]
    return ImageSet(tag="0.62", resolved_version="0.62.0", backend=backend, api="v0", app_image="a", runtime_image="r",
                    notes=notes, lacks=lacks)


def test_a_task_a_cell_cannot_do_is_a_skip_naming_what_lacks_and_where() -> None:
    up = tasks.upstream()
    pypi, official = images("pypi", ["browser"]), images("official", [])
    v0, v1 = generations.V0, generations.V1
    assert up["t03-ipython-file"].skip(v0, pypi, scripted=True) is None
    assert up["t03-ipython-file"].skip(v1, pypi, scripted=True).startswith(
        "needs ipython: the V1 SDK agent has no IPython tool")
    assert up["t05-browse-local"].skip(v0, pypi, scripted=True) == \
        "needs browser: the pypi backend's images of 0.62.0 lack it (why browser)"
    assert up["t05-browse-local"].skip(v1, official, scripted=True) is None
    assert up["t06-pr-browsing"].skip(v0, official, scripted=False).startswith("needs internet: oh-matrix runs "
                                                                               "tasks offline")
    keyless = taskfile.parse(GOOD_TASK, "m.toml", "file:m.toml")[0]
    assert tasks.from_spec(keyless).skip(v0, official, scripted=True).startswith("needs --llm real: file:m.toml "
                                                                                 "gives no keyless steps")
    assert tasks.from_spec(keyless).skip(v0, official, scripted=False) is None
    only_v0 = taskfile.parse(task(generations='["v0"]') + CHECK, "m", "file:m")[0]
    assert tasks.from_spec(only_v0).skip(v1, official, scripted=False) == \
        "applies to v0 only (file:m says generations = ['v0']), not v1"


def test_the_pypi_backend_says_it_lacks_the_browser() -> None:
    from harness.images import pypi

    assert list(pypi.LACKS) == ["browser"] and "ENABLE_BROWSER=false" in pypi.LACKS["browser"]


# -- the checks, with a real shell standing in for the runtime --------------------------------

class Shell:
    """A container whose exec_run is a local process (the checks' own shell code runs)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def exec_run(self, cmd: list[str], user: str = "", demux: bool = False,
                 environment: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.calls.append({"cmd": cmd, "env": environment})
        p = subprocess.run(cmd, capture_output=True, env={"PATH": "/usr/bin:/bin", **(environment or {})},
                           timeout=30)
        return p.returncode, p.stdout + p.stderr


def run_task(text: str, tmp_path: Path, turn: Turn | None = None, env: dict[str, str] | None = None) -> tasks.Check:
    t = tasks.from_spec(taskfile.parse(text, "m.toml", "file:m.toml")[0])
    w = Where(str(tmp_path), "n1", Shell(), env=env or {}, timeout=10)
    assert t.setup is not None
    t.setup(w)
    return t.check(w, turn or Turn(done=True, state="finished"))


def test_a_command_check_judges_exit_status_and_output(tmp_path: Path) -> None:
    ok = run_task(task() + '[tasks.check]\nrun = "printf \'  hello\\\\r\\\\n\'"\noutput = "hello"\n', tmp_path)
    assert ok.ok, ok
    bad = run_task(task() + '[tasks.check]\nrun = "echo nope; exit 3"\n', tmp_path)
    assert not bad.ok and bad.detail.startswith("`echo nope; exit 3` exited 3, expected 0")
    assert bad.evidence == [f"check command: echo nope; exit 3 (in {tmp_path})", "check exit status: 3, expected 0",
                            "check output (tail): nope"]
    assert run_task(task() + '[tasks.check]\nrun = "exit 3"\nexit_code = 3\n', tmp_path).ok
    assert not run_task(task() + '[tasks.check]\nrun = "echo abc"\noutput_contains = "x"\n', tmp_path).ok


def test_a_task_starts_in_an_emptied_workspace_with_its_files_and_setup(tmp_path: Path) -> None:
    (tmp_path / "left-by-an-earlier-task").write_text("x")
    (tmp_path / ".git").mkdir()
    text = task(setup='["echo set > up.txt"]') + '[[tasks.files]]\npath = "sub/a.txt"\ncontent = "A\\n\\u00e9"\n' \
        + '[tasks.check]\nfile = "sub/a.txt"\ncontent = "A\\n\\u00e9"\nrun = "cat up.txt"\noutput = "set"\n'
    assert run_task(text, tmp_path).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "up.txt"]


def test_a_failing_setup_stops_the_task_with_the_command_and_its_output(tmp_path: Path) -> None:
    with pytest.raises(TaskSetupError, match=r"setup\[0\] `echo broken >&2; false` exited 1 in the runtime: broken"):
        run_task(task(setup='["echo broken >&2; false"]') + CHECK, tmp_path)


def test_a_command_that_never_returns_times_out(tmp_path: Path) -> None:
    t = tasks.from_spec(taskfile.parse(task() + '[tasks.check]\nrun = "sleep 30"\n', "m", "x")[0])
    c = t.check(Where(str(tmp_path), "n", Shell(), timeout=1), Turn(done=True, state="x"))
    assert not c.ok and "(timed out after 1 s)" in c.evidence[1]


def test_a_background_process_does_not_hold_the_setup(tmp_path: Path) -> None:
    """t05 starts its web server with `nohup ... &`: setup returns at once, the servers still
    running. A plain `sleep 20 &` keeps the command's output open: were it read through a
    pipe (not a file, tasks.RUN), the setup would wait the 20 s out."""
    started = time.monotonic()
    try:
        assert run_task(task(setup='["nohup sleep 20 > /dev/null 2>&1 & echo $! > quiet.pid", '
                                   '"sleep 20 & echo $! > plain.pid"]') + CHECK, tmp_path).ok
        took = time.monotonic() - started
        pids = [int((tmp_path / f"{name}.pid").read_text()) for name in ("quiet", "plain")]
        for pid in pids:
            os.kill(pid, 0)  # still running after the setup returned: raises if it is gone
        assert took < 10, f"the setup waited {took:.1f} s for its background processes"
    finally:
        for f in tmp_path.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(f.read_text()), signal.SIGTERM)


def test_secrets_reach_setup_and_check_as_env(tmp_path: Path) -> None:
    text = task(secrets='["MY_TOKEN"]', setup='["test \\"$MY_TOKEN\\" = s3cr3t-value"]') \
        + '[tasks.check]\nrun = "echo $MY_TOKEN"\noutput = "s3cr3t-value"\n'
    assert run_task(text, tmp_path, env={"MY_TOKEN": "s3cr3t-value"}).ok


def test_a_message_check_reads_the_kinds_it_names() -> None:
    t = tasks.from_spec(taskfile.parse(
        task() + '[tasks.check]\nmessage_contains = "707"\nmessages_from = ["message", "finish_thought"]\n',
        "m", "x")[0])
    turn = Turn(done=True, state="finished")
    turn.say("finish", "The secret number is 707")  # the finish tool's message: upstream never read it
    w = Where("/w", "n")
    miss = t.check(w, turn)
    assert not miss.ok and "never contain '707'" in miss.detail
    assert miss.evidence == ["agent said (finish): The secret number is 707"]
    turn.say("message", "It is 707.")
    assert t.check(w, turn).ok


def test_keyless_steps_become_the_scripted_llms_steps_in_the_workspace() -> None:
    t = tasks.upstream()["t01-fix-typos"]
    assert t.steps is not None
    steps = t.steps(Where("/workspace/project", "n"))
    assert steps[0] == {"do": "replace", "path": "/workspace/project/bad.txt", "old": "stupid typoo.",
                        "new": "stupid typo."}
    t07 = tasks.upstream()["t07-interactive"].steps(Where("/workspace", "n"))  # type: ignore[misc]
    assert t07[-1] == {"do": "say", "text": r"The secret number is \1.", "from_output": r"secret number: (\d+)"}
    said = llm.said(t07[-1], "Enter your name: Enter your age: Hello John, you are 25 years old. "
                             "Tell you a secret number: 707\n[The command completed with exit code 0.]")
    assert said == "The secret number is 707."


def test_a_real_llm_gets_the_instruction_verbatim() -> None:
    t = tasks.upstream()["t02-hello-sh"]
    w = Where("/workspace", "abc")
    assert t.message(w, scripted=False) == "Write a shell script '/workspace/hello.sh' that prints 'hello'."
    assert t.message(w, scripted=True).endswith(llm.marker("t02-hello-sh", "abc"))
    assert t.key(w, scripted=False) == t.message(w, scripted=False)


def test_declared_secrets_are_redacted_whatever_their_names() -> None:
    r = CellResult(id="c", tag="0.62", mode="host", api="v0", connect=Connect(verdict="pass"),
                   tasks=[TaskResult(name="t", verdict="fail", detail="printed opensesame-42",
                                     evidence=["check output (tail): opensesame-42"])])
    out = redact_result(r, {}, ["opensesame-42"])
    assert "opensesame" not in out.model_dump_json()


def test_a_skipped_task_counts_for_nothing_and_is_shown_apart() -> None:
    from harness.report import grid, markdown
    from harness.results.recommend import recommend

    cell = CellResult(id="0.62-host", tag="0.62", mode="host", api="v0", resolved_version="0.62.0",
                      connect=Connect(verdict="pass", seconds=20),
                      tasks=[TaskResult(name="t01-fix-typos", verdict="pass", catalog="upstream"),
                             TaskResult(name="t05-browse-local", verdict="skip", catalog="upstream",
                                        detail="needs browser: the pypi backend's images of 0.62.0 lack it")])
    assert cell.passed and cell.tasks_passed
    assert grid.task_summary(cell) == "tasks 1/1 +1 skipped"
    assert "passed all 1 tasks (1 skipped: not applicable here)" in recommend([cell]).why
    assert markdown.failures([cell]) == []
    assert markdown.skipped([cell]) == {"needs browser: the pypi backend's images of 0.62.0 lack it":
                                        ["0.62-host-t05-browse-local"]}


def test_a_secret_missing_from_the_environment_is_an_input_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import workflow

    (tmp_path / "t.toml").write_text(task(secrets='["OH_MATRIX_TEST_TOKEN"]') + CHECK)
    (tmp_path / "m.toml").write_text('[run]\ntasks = ["file:t.toml"]\n[[targets]]\ntag = "0.62"\n[modes.host]\n')
    monkeypatch.delenv("OH_MATRIX_TEST_TOKEN", raising=False)
    o = workflow.Options(matrix=str(tmp_path / "m.toml"), llm="scripted")
    with pytest.raises(InputError, match=r"file:t.toml: task t1: secrets\[0\]: OH_MATRIX_TEST_TOKEN is not set"):
        workflow.inputs(o)
    monkeypatch.setenv("OH_MATRIX_TEST_TOKEN", "value")
    workflow.inputs(o)
