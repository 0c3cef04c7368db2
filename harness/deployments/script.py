"""A script's words and operators, and the commands they make, as the shell delimits them
(POSIX's Shell Command Language, with bash's `|&`, `&>` and `&>>`): quotes, escapes, `$(...)`,
backquotes and `${...}` inside a word; `|`, `||`, `&&`, `;`, `&` and the redirections
operators of their own wherever they stand, unless quoted (`img|tee log` is three words and
a pipe); comments; here-documents' bodies, which are no commands.

Reading nothing, running nothing: what the operators mean for a deployment is shell.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.deployments.compose import closing_brace
from harness.errors import InputError

# Longest first: `||` is not two pipes, `2>&1` not `2>` and `&1`.
OPERATORS = ("&>>", "<<<", "<<-", "||", "&&", ";;", "|&", ">>", "<<", "&>", ">&", "<&", "<>", ">|",
             "|", "&", ";", "(", ")", "<", ">")
REDIRECTS = frozenset({"<", ">", ">>", ">|", "<>", "<<", "<<-", "<<<", "<&", ">&", "&>", "&>>"})
INPUTS = frozenset({"<", "<>", "<<", "<<-", "<<<", "<&"})  # what feeds a command's input
PIPES = frozenset({"|", "|&"})


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "op" or "newline" (whose span holds the here-documents it ends)
    start: int
    end: int
    text: str  # a redirection's IO number included: `2>`


@dataclass
class Command:
    """One simple command: its words, its redirections (operator and target), and the
    operators on either side: "" at the script's ends, "\\n", ";", "&", "&&", "||", "|", "|&"."""

    line: int
    before: str
    words: list[Token] = field(default_factory=list)
    redirects: list[tuple[Token, Token]] = field(default_factory=list)
    after: str = ""

    @property
    def start(self) -> int:
        return min(t.start for t in self._tokens())

    @property
    def end(self) -> int:
        return max(t.end for t in self._tokens())

    def _tokens(self) -> list[Token]:
        return [*self.words, *(t for pair in self.redirects for t in pair)]


def redirect(op: str) -> str:
    """The redirection operator of `op` without its IO number (`2>&` -> `>&`), "" if none."""
    bare = op.lstrip("0123456789")
    return bare if bare in REDIRECTS else ""


def tokens(text: str, where: str) -> list[Token]:
    """`text`'s words, operators and newlines, comments and `\\` + newline left out."""
    out: list[Token] = []
    heredocs: list[int] = []  # where in `out` a `<<` waits for the next newline
    i, n, start = 0, len(text), -1
    while i < n:
        c = text[i]
        if c in " \t\n" or (c == "\\" and text[i + 1:i + 2] == "\n") or (c == "#" and start < 0):
            if start >= 0:
                out.append(Token("word", start, i, text[start:i]))
                start = -1
            if c == "\n":
                end = _heredoc_bodies(text, i + 1, _pending(out, heredocs), where)
                heredocs.clear()
                out.append(Token("newline", i, end, "\n"))
                i = max(end, i + 1)
            else:
                i = text.find("\n", i) if c == "#" else i + (2 if c == "\\" else 1)
                i = n if i < 0 else i
            continue
        if c in "<>" and text[i + 1:i + 2] == "(":
            close = _closing_paren(text, i + 1, where)
            raise InputError(f"{where}: line {text.count(chr(10), 0, i) + 1}: `{text[i:close + 1]}`: a process "
                             "substitution runs a command, and the harness runs none of your script's")
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            first = start if start >= 0 and op in REDIRECTS and text[start:i].isdigit() else i  # `2>&1`
            if start >= 0 and first != start:
                out.append(Token("word", start, i, text[start:i]))
            start = -1
            out.append(Token("op", first, i + len(op), text[first:i + len(op)]))
            if op in ("<<", "<<-"):
                heredocs.append(len(out) - 1)
            i += len(op)
            continue
        start = i if start < 0 else start
        i = _word_part_end(text, i, where)
    if start >= 0:
        out.append(Token("word", start, n, text[start:n]))
    _heredoc_bodies(text, n, _pending(out, heredocs), where)  # one on the last line never ends
    return out


def _pending(out: list[Token], heredocs: list[int]) -> list[tuple[str, Token]]:
    """The here-documents waiting for a newline: each `<<` and its delimiter."""
    return [(out[k].text, out[k + 1]) for k in heredocs if _word_at(out, k + 1)]


def _word_at(out: list[Token], k: int) -> bool:
    return k < len(out) and out[k].kind == "word"


def _word_part_end(text: str, i: int, where: str) -> int:
    """Where the part of a word that starts at `i` ends: a quoted string, an escape, a
    substitution or an expansion as a whole, else one character."""
    c = text[i]
    if c == "\\":
        return i + 2
    if c in "'`":  # nothing inside is special: the part ends at the same quote
        close = text.find(c, i + 1)
        if close < 0:
            what = "quotation" if c == "'" else "backquote"
            raise InputError(f"{where}: does not parse as a shell would: no closing {what}")
        return close + 1
    if c == '"':
        j = i + 1
        while j < len(text) and text[j] != '"':  # `"$(echo "x")"` is one word
            if text.startswith("$(", j):
                j = _closing_paren(text, j + 1, where) + 1
            else:
                j += 2 if text[j] == "\\" else 1
        if j >= len(text):
            raise InputError(f"{where}: does not parse as a shell would: no closing quotation")
        return j + 1
    if text.startswith("$(", i):
        return _closing_paren(text, i + 1, where) + 1
    if text.startswith("${", i):
        close = closing_brace(text[i:])
        if close < 0:
            raise InputError(f"{where}: {text[i:i + 20]!r}: an unclosed ${{")
        return i + close + 1
    return i + 1


def _closing_paren(text: str, i: int, where: str) -> int:
    """The index of the `)` that closes the `(` at `i`."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise InputError(f"{where}: {text[max(i - 1, 0):i + 20]!r}: an unclosed substitution")


def _heredoc_bodies(text: str, i: int, pending: list[tuple[str, Token]], where: str) -> int:
    """Where the here-documents that start at `i` (after a newline) end: each runs to the
    line that is its delimiter (after tabs, for `<<-`)."""
    for op, word in pending:
        delimiter = word.text.replace("'", "").replace('"', "").replace("\\", "")
        while True:
            if i >= len(text):
                raise InputError(f"{where}: `{op}{word.text}`: the here-document never ends (no line {delimiter})")
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            line, i = text[i:end], end + 1
            if (line.lstrip("\t") if op.endswith("-") else line) == delimiter:
                i = end
                break
    return i


def commands(text: str, where: str) -> list[Command]:
    """`text`'s simple commands in order, each with its redirections and the operators
    around it. A subshell, a group or a `case` is an input error naming its operator."""
    out: list[Command] = []
    toks = tokens(text, where)
    cur = Command(1, "")
    k = 0
    while k < len(toks):
        t = toks[k]
        line = text.count("\n", 0, t.start) + 1
        if not cur.words and not cur.redirects:
            cur.line = line
        if t.kind == "word":
            cur.words.append(t)
        elif redirect(t.text):
            if not _word_at(toks, k + 1):
                raise InputError(f"{where}: line {line}: `{t.text}`: does not parse as a shell would "
                                 "(nothing to redirect to)")
            cur.redirects.append((t, toks[k + 1]))
            k += 1
        elif t.text in ("(", ")", ";;"):
            raise InputError(f"{where}: line {line}: `{t.text}`: a subshell, group or case the reader cannot "
                             "follow; write the docker run line as a command of its own")
        elif cur.words or cur.redirects:
            cur.after = t.text
            out.append(cur)
            cur = Command(line, t.text)
        elif t.kind == "op":
            raise InputError(f"{where}: line {line}: `{t.text}`: does not parse as a shell would "
                             "(no command before it)")
        k += 1
    if cur.words or cur.redirects:
        out.append(cur)
    elif cur.before in ("&&", "||", *PIPES):
        raise InputError(f"{where}: `{cur.before}`: does not parse as a shell would (no command after it)")
    return out
