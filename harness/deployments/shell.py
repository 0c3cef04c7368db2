"""A `docker run` line as the shell runs it: the script around it (`export WORKSPACE_BASE=...`
lines before it, `sudo` in front, comments), and its expansions, done before the line is
split: `$VAR`, `${VAR}` and `${VAR:-default}` (and the other forms compose shares with the
shell) from the environment, and the command substitutions OpenHands' own instructions put
in the line, `$(id -u)`, `$(pwd)`, `$(date +%Y%m%d%H%M%S)`. Without them the app would get
`SANDBOX_USER_ID=$(id -u)` as a literal and fail on the harness's misreading, not on the
user's host.

Only commands that read and change nothing are run (`id`, `pwd`, `whoami`, `date` with a
format); any other substitution is an input error naming it: a run never executes the
user's commands. Single quotes keep `$` literal, as in the shell; an expansion's result is
one word (no field splitting), as it is in the double quotes people should have used.

The operators around the line are read as the shell reads them (script.py delimits them):
`docker run ... | tee log` ends before the `|`, and what reads its output, a redirection of
docker's own output and a command run only if it fails (`|| echo failed`) are no part of the
deployment: each is said in the cell's notes. What would change the deployment, or what the
reader cannot follow (input the container would read, a pipe or `||` elsewhere, a command in
the background before it, a subshell), is an input error naming the file and the operator.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.deployments import script
from harness.deployments.compose import Runner, closing_brace, interpolate
from harness.deployments.script import INPUTS, PIPES, Command
from harness.errors import InputError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What may read docker's output through a pipe: they show or save it, and run nothing.
CONSUMERS = frozenset({"tee", "cat", "grep", "less", "more", "head", "tail", "ts"})
# What may run when docker run fails (`|| echo failed`): they say so, and run nothing.
FALLBACKS = frozenset({"echo", "printf", "true", "false", "exit", ":"})

# Commands a substitution may run: they only read (`date` only prints: no -s/--set).
READ_ONLY = frozenset({"id", "pwd", "whoami", "date"})
# What runs such a command for the reader, which runs nothing itself, is handed to it
# (compose.Runner, deployments/commands.py); without one, a `$(...)` that needs one is bad input.


@dataclass(frozen=True)
class RunLine:
    """The `docker run` command of a script as the shell runs it."""

    words: list[str]  # expanded, `sudo` dropped
    notes: tuple[str, ...]  # what around it is no part of the deployment, for the cell's notes
    stdin: str  # what the script feeds docker run's input (`< file`, `cmd |`), as written; "" if nothing
    line: int = 1  # where the docker run command starts


def docker_run_words(text: str, env: dict[str, str], folder: Path, where: str, run: Runner | None = None) -> RunLine:
    """The one `docker run` command of `text` (a line, or a script that sets variables
    before it, as OpenHands' instructions long did), expanded; `env` gains the variables the
    script sets. Any other command is an input error: the harness runs none."""
    text = text.replace("\r\n", "\n")
    cmds = script.commands(text, where)
    at = next((i for i, c in enumerate(cmds) if _is_docker_run(text, c)), None)
    if at is None:
        for c in cmds:  # the first command that is not the line says more than its absence
            _variables(text, c, env, folder, where, run)
        raise InputError(f"{where}: no line starting with `docker run`")
    notes: list[str] = []
    stdin = _before(text, cmds[:at], env, folder, where, run)
    line = cmds[at]
    words = _words(_raw(line), env, folder, f"{where}: line {line.line}", run)
    stdin = _redirects(text, line, notes) or stdin
    rest = at + 1 + _after(text, cmds[at:], notes, where)
    for c in cmds[rest:]:
        if c.before in PIPES or c.after in PIPES:
            raise _cannot(where, c, c.before if c.before in PIPES else c.after, "a pipe between commands the harness "
                          "does not run")
        if _is_docker_run(text, c):
            raise InputError(f"{where}: line {c.line}: a second docker run line (a deployment is one)")
        _variables(text, c, env, folder, where, run)
    return RunLine(words, tuple(notes), stdin, line.line)


def _is_docker_run(text: str, c: Command) -> bool:
    return _docker_command([w.text for w in c.words])[:2] == ["docker", "run"]


def _raw(c: Command) -> str:
    """A command's words as written, without its redirections."""
    return " ".join(w.text for w in c.words)


def _shown(text: str, c: Command) -> str:
    """A command as written, redirections included, on one line."""
    return " ".join(text[c.start:c.end].replace("\\\n", " ").split())


def _cannot(where: str, c: Command, word: str, why: str) -> InputError:
    return InputError(f"{where}: line {c.line}: `{word}`: {why}; the reader cannot follow it")


def _before(text: str, cmds: list[Command], env: dict[str, str], folder: Path, where: str,
            run: Runner | None) -> str:
    """Reads the commands before docker run (variables it uses); returns what one pipes into it."""
    for i, c in enumerate(cmds):
        if c.after == "||":  # what follows runs only if this fails, which the harness cannot tell
            raise _cannot(where, c, "||", f"what follows runs only if `{_shown(text, c)}` fails")
        if c.after == "&":  # run in a subshell of its own: its variables are not the line's
            raise _cannot(where, c, "&", f"`{_shown(text, c)}` runs in the background")
        if c.after in PIPES:
            if i == len(cmds) - 1:  # into docker run: the container's input, if -i passes it on
                return f"{_shown(text, c)} {c.after}"
            raise _cannot(where, c, c.after, "a pipe between commands the harness does not run")
        _variables(text, c, env, folder, where, run)
    return ""


def _redirects(text: str, run: Command, notes: list[str]) -> str:
    """docker run's own redirections: its output's are noted; returns the input one, if any."""
    stdin = ""
    out = []
    for op, target in run.redirects:
        shown = text[op.start:target.end]
        bare = script.redirect(op.text)
        if bare in INPUTS and op.text[:-len(bare)] in ("", "0"):  # file descriptor 0, docker's input
            stdin = shown
        else:
            out.append(shown)
    if out:
        notes.append(f"docker run's own output, redirected (`{' '.join(out)}`), is not part of the deployment")
    return stdin


def _after(text: str, cmds: list[Command], notes: list[str], where: str) -> int:
    """Reads what reads docker run's output (`| tee log`) and what runs only if it fails
    (`|| echo failed`), noting each; returns how many commands after docker run that is."""
    k = 0
    readers = []
    while cmds[k].after in PIPES:
        k += 1
        name = cmds[k].words[0].text if cmds[k].words else ""
        if name not in CONSUMERS:
            raise _cannot(where, cmds[k], cmds[k - 1].after, f"docker run's output piped to `{_shown(text, cmds[k])}`, "
                          f"which may do anything with it (read here: {', '.join(sorted(CONSUMERS))})")
        readers.append(_shown(text, cmds[k]))
    if readers:
        notes.append(f"docker run's output, piped to `{' | '.join(readers)}`, is not part of the deployment")
    while cmds[k].after == "||":
        k += 1
        name = cmds[k].words[0].text if cmds[k].words else ""
        if name not in FALLBACKS or cmds[k].after in PIPES:
            raise _cannot(where, cmds[k], "||", f"`{_shown(text, cmds[k])}` runs if docker run fails, and may "
                          f"change what runs (read here: {', '.join(sorted(FALLBACKS))})")
        notes.append(f"`{_shown(text, cmds[k])}`, run only if docker run fails, is not part of the deployment")
    return k


def _variables(text: str, c: Command, env: dict[str, str], folder: Path, where: str, run: Runner | None) -> None:
    """A command around docker run: variables set (`env` gains them), `set` or `mkdir`; any
    other is an input error, as the harness runs none."""
    number = c.line
    words = _words(_raw(c), env, folder, f"{where}: line {number}", run)
    if not words or words[0] in ("set", "mkdir"):  # the cell's own folders stand for what mkdir makes
        return
    assignments = words[1:] if words[0] == "export" else words
    if not assignments or not all(_NAME.fullmatch(w.partition("=")[0]) and "=" in w for w in assignments):
        raise InputError(f"{where}: line {number}: {' '.join(words)[:60]!r}: expected the docker run "
                         "line, or variables set before it (the harness runs no other command)")
    env.update(w.split("=", 1) for w in assignments)  # type: ignore[misc]


def expand(line: str, env: Mapping[str, str], folder: Path, where: str, run: Runner | None = None) -> str:
    """`line` with its expansions done, quoted so that shlex.split yields the shell's words."""
    out: list[str] = []
    quote = ""  # "", "'" or '"'
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote == "'":
            out.append(c)
            quote = "" if c == "'" else quote
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(line[i:i + 2])
            i += 2
        elif c == "#" and not quote and (i == 0 or line[i - 1].isspace()):  # a comment: to the line's end
            end = line.find("\n", i)
            i = n if end < 0 else end
        elif c in "'\"" and (not quote or c == quote):
            quote = "" if quote else c
            out.append(c)
            i += 1
        elif (c == "$" and line.startswith("$(", i)) or c == "`":
            close = _closing(line, i, where)
            body = line[i + 2:close] if c == "$" else line[i + 1:close]
            out.append(_as_word(_substitute(body, env, folder, where, run), quote))
            i = close + 1
        elif c == "$" and i + 1 < n and (line[i + 1] == "{" or line[i + 1].isalpha() or line[i + 1] == "_"):
            # `${A:-${B:-x}}` ends at its own brace, not the first
            end = i + closing_brace(line[i:]) + 1 if line[i + 1] == "{" else _name_end(line, i + 1)
            if end <= i:
                raise InputError(f"{where}: {line[i:i + 20]!r}: an unclosed ${{")
            value = interpolate(line[i:end], {**env, "PWD": str(folder.resolve())}, where)
            out.append(_as_word(value, quote))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def spans(text: str) -> list[tuple[int, int]]:
    """Where each word and operator of `text` starts and ends, as the shell delimits them
    (script.tokens): so a fix can edit the user's line in place and leave every other
    character as written."""
    return [(t.start, t.end) for t in script.tokens(text, "") if t.kind != "newline"]


def _words(command: str, env: dict[str, str], folder: Path, where: str, run: Runner | None) -> list[str]:
    """One command's words, expanded, with `sudo` (and its flags) and `container` dropped."""
    try:
        words = shlex.split(expand(command.replace("\\\n", " "), env, folder, where, run), comments=False)
    except ValueError as e:
        raise InputError(f"{where}: does not parse as a shell would: {e}") from None
    return _docker_command(words)


def _docker_command(words: list[str]) -> list[str]:
    """A command's words with `sudo` (and its flags) and `docker container run`'s `container`
    dropped: `sudo -E docker container run` is the same daemon's `docker run`."""
    if words[:1] == ["sudo"]:
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
    return ["docker", *words[2:]] if words[:2] == ["docker", "container"] else words


def run_line(text: str) -> tuple[int, int, int]:
    """Where the `docker run` command of a script (read by docker_run_words) starts and
    ends, and where what follows it on its line ends (`| tee log`, `> log 2>&1 &`, a
    here-document's body; a comment not)."""
    toks = script.tokens(text, "")
    for c in script.commands(text, ""):
        if _is_docker_run(text, c):
            end = max(w.end for w in c.words)
            tail = end
            for t in (t for t in toks if t.start >= end):
                if t.kind == "newline":
                    tail = t.end if t.end > t.start + 1 else tail  # a here-document's body comes along
                    break
                tail = t.end
            return c.words[0].start, end, tail
    raise ValueError("no docker run line")


def _name_end(line: str, i: int) -> int:
    while i < len(line) and (line[i].isalnum() or line[i] == "_"):
        i += 1
    return i


def _closing(line: str, i: int, where: str) -> int:
    """The index of the `)` (or backquote) that closes the substitution opened at `i`."""
    if line[i] == "`":
        close = line.find("`", i + 1)
    else:
        depth, close = 0, -1
        for j in range(i + 1, len(line)):
            depth += {"(": 1, ")": -1}.get(line[j], 0)
            if depth == 0:
                close = j
                break
    if close < 0:
        raise InputError(f"{where}: {line[i:i + 20]!r}: an unclosed command substitution")
    return close


def _substitute(body: str, env: Mapping[str, str], folder: Path, where: str, run: Runner | None) -> str:
    """What a `$(...)`'s read-only command printed, run by `run` (pwd is the line's folder)."""
    try:
        argv = shlex.split(body)
    except ValueError as e:
        raise InputError(f"{where}: $({body}): does not parse: {e}") from None
    if not argv or argv[0] not in READ_ONLY or (argv[0] == "date" and any(
            a.startswith("-") and a not in ("-u", "--utc") for a in argv[1:])):
        raise InputError(f"{where}: $({body}): the harness runs no command of your line but "
                         f"{', '.join(sorted(READ_ONLY))} (date with a +FORMAT only); put the value in the line")
    if argv[0] == "pwd":  # the line's folder ($PWD too): where it is run from, as compose's project folder
        return str(folder.resolve())
    if run is None:
        raise InputError(f"{where}: $({body}): this reading of your line was given nothing to run it with")
    code, out, err = run(argv, dict(env))
    if code != 0:
        raise InputError(f"{where}: $({body}): exit {code}: {err.strip()[:200]}")
    return out.rstrip("\n")


def _as_word(value: str, quote: str) -> str:
    """`value` as shlex reads it back inside the current quoting."""
    if quote == '"':
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return shlex.quote(value) if value else "''"
