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
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

from harness.deployments.compose import closing_brace, interpolate
from harness.errors import InputError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

SEPARATORS = ("&&", ";")  # between the commands of one line, outside quotes

# Commands a substitution may run: they only read (`date` only prints: no -s/--set).
READ_ONLY = frozenset({"id", "pwd", "whoami", "date"})


def docker_run_words(text: str, env: dict[str, str], folder: Path, where: str) -> list[str]:
    """The words of the one `docker run` line of `text` (a line, or a script that sets
    variables before it, as OpenHands' instructions long did), expanded; `env` gains the
    variables the script sets. Any other command is an input error: the harness runs none."""
    found: list[str] | None = None
    text = text.replace("\r\n", "\n")
    for start, end in logical_lines(text):
        number = text.count("\n", 0, start) + 1
        line = text[start:end]
        for a, b in _commands(line):  # `export A=1; docker run ...`, `mkdir -p x && docker run ...`
            words = _words(line[a:b], env, folder, f"{where}: line {number}")
            if words[:2] == ["docker", "run"]:
                if found is not None:
                    raise InputError(f"{where}: line {number}: a second docker run line (a deployment is one)")
                found = words
            elif words and words[0] not in ("set", "mkdir"):  # the cell's own folders stand for what mkdir makes
                assignments = words[1:] if words[0] == "export" else words
                if not assignments or not all(_NAME.fullmatch(w.partition("=")[0]) and "=" in w for w in assignments):
                    raise InputError(f"{where}: line {number}: {' '.join(words)[:60]!r}: expected the docker run "
                                     "line, or variables set before it (the harness runs no other command)")
                env.update(w.split("=", 1) for w in assignments)  # type: ignore[misc]
    if found is None:
        raise InputError(f"{where}: no line starting with `docker run`")
    return found


def expand(line: str, env: Mapping[str, str], folder: Path, where: str) -> str:
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
            out.append(_as_word(_run(body, env, folder, where), quote))
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
    """Where each word of `text` starts and ends, as the shell delimits them (quotes, `$(...)`
    and backquotes inside a word, `\\` + newline as a blank, comments skipped, and `;` or `&&`
    a word of its own): so a fix can edit the user's line in place and leave every other
    character as written."""
    out: list[tuple[int, int]] = []
    i, n, start, quote = 0, len(text), -1, ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
            i += 1
            continue
        if c.isspace() or (c == "\\" and text[i + 1:i + 2] == "\n"):
            if start >= 0:
                out.append((start, i))
                start = -1
            i += 2 if c == "\\" else 1
            continue
        if c == "#" and start < 0:
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if sep := next((x for x in SEPARATORS if text.startswith(x, i)), None):  # ends a command
            if start >= 0:
                out.append((start, i))
            out.append((i, i + len(sep)))
            i, start = i + len(sep), -1
            continue
        start = i if start < 0 else start
        if c == "\\":
            i += 2
        elif c in "'\"":
            quote = c
            i += 1
        elif c == "`" or text.startswith("$(", i):
            i = _closing(text, i, "") + 1
        else:
            i += 1
    if start >= 0:
        out.append((start, n))
    return out


def logical_lines(text: str) -> list[tuple[int, int]]:
    """Where each logical line of a script starts and ends (a `\\` + newline continues one)."""
    out, start = [], 0
    for m in re.finditer(r"(?<!\\)\n", text):
        out.append((start, m.start()))
        start = m.end()
    return [*out, (start, len(text))]


def _words(command: str, env: dict[str, str], folder: Path, where: str) -> list[str]:
    """One command's words, expanded, with `sudo` (and its flags) and `container` dropped."""
    try:
        words = shlex.split(expand(command.replace("\\\n", " "), env, folder, where), comments=True)
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


def _commands(line: str) -> list[tuple[int, int]]:
    """Where a logical line's commands start and end: between its `;` and `&&` words."""
    out, start = [], 0
    for a, b in spans(line):
        if line[a:b] in SEPARATORS:
            out.append((start, a))
            start = b
    return [(a, b) for a, b in [*out, (start, len(line))] if line[a:b].strip()]


def run_line(text: str) -> tuple[int, int]:
    """Where the `docker run` command of a script (read by docker_run_words) starts and ends."""
    for start, end in logical_lines(text):
        for a, b in _commands(text[start:end]):
            command = text[start + a:start + b]
            if _docker_command([command[x:y] for x, y in spans(command)])[:2] == ["docker", "run"]:
                return start + a + len(command) - len(command.lstrip()), start + b
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


def _run(body: str, env: Mapping[str, str], folder: Path, where: str) -> str:
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
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=dict(env), check=False)
    if done.returncode != 0:
        raise InputError(f"{where}: $({body}): exit {done.returncode}: {done.stderr.strip()[:200]}")
    return done.stdout.rstrip("\n")


def _as_word(value: str, quote: str) -> str:
    """`value` as shlex reads it back inside the current quoting."""
    if quote == '"':
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return shlex.quote(value) if value else "''"
