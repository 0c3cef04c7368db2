"""Secrets (LLM keys, tokens, whatever a user's environment holds) never appear in any output.

Which values are secret. Every value from a user's environment: a deployment's env files,
the `-e`/`--env` of its docker run line, compose's `environment`, `--app-env` (and
OH_MATRIX_APP_ENV), the real LLM's settings and a task file's `secrets`; except the plain
OpenHands settings the harness reads and places itself (PLAIN: ports, paths, image names,
switches), which carry no credential and whose values the cell's notes need. A value from
any other source (a matrix's `[env]`) is secret when its name says so (`*KEY*`, `*TOKEN*`,
`*SECRET*`, `*PASSWORD*`).

How they are kept out, by construction rather than by each print:

- each secret is a `Secret`, a str whose repr, str and format are a mask: any object that
  holds one (a pytest fixture's or parameter's repr, a traceback's locals, an f-string)
  shows the mask; the real value is `reveal()`ed only where a container is made;
- the line people read names a secret variable (`-e GITHUB_TOKEN`, `--env-file .env`),
  never its value (modes.AppLaunch.options);
- the last net: every text the harness writes or prints (results, reports, JUnit, fixes,
  progress lines, errors, crash files) is scrubbed of every secret value this process has
  seen (`scrub`), and results carry `<redacted>` for secret settings (`redact_result`).

The values travel from the controller to xdist workers in memory (workerinput), never
through a file.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model (pydantic) is not loaded for a pytest that names no matrix
    from harness.model import CellResult

HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MASK = "<redacted>"
# OpenHands settings the harness itself reads, moves or explains (their values are ports,
# paths, image names and switches): shown as written. Every other value a user gives is secret.
# The generations' own (runtime image, callback port, URL pattern, labels, grace, host network)
# are added from their registry (`plain()`), where alone a generation's settings are named.
PLAIN = frozenset({
    "SANDBOX_USER_ID", "SANDBOX_VOLUMES", "SANDBOX_LOCAL_RUNTIME_URL", "SANDBOX_KEEP_RUNTIME_ALIVE",
    "AGENT_SERVER_IMAGE_REPOSITORY", "AGENT_SERVER_IMAGE_TAG",
    "WORKSPACE_BASE", "WORKSPACE_MOUNT_PATH", "WORKSPACE_MOUNT_PATH_IN_SANDBOX", "OH_WEB_URL",
    "DOCKER_HOST_ADDR", "LOG_ALL_EVENTS", "LOG_LEVEL", "DEBUG", "RUNTIME", "NO_PROXY", "no_proxy",
    # the agent-server's own runtimes (agent_server/config.py; docs/runtimes.md): an image
    # name kept secret would mask that image wherever a line names it
    "OH_CONVERSATION_RUNTIME", "OH_CONVERSATION_IMAGE", "OH_EXECUTION_RUNTIME", "OH_EXECUTION_IMAGE", "PORT",
})
_SETTINGS = ("runtime_image_env", "callback_port_env", "url_pattern_env", "label_env", "startup_grace_env")
SHORTEST = 4  # a secret-named value this short is still scrubbed from free text
SHORTEST_UNNAMED = 8  # any other secret: shorter ones ("true", "1000") would mask ordinary words
_seen: set[str] = set()  # every secret value made in this process, for scrub()


@functools.cache
def plain() -> frozenset[str]:
    """PLAIN and every setting a generation's registry entry names (its older releases' too)."""
    from harness import generations

    named: set[str] = set(PLAIN)
    for gen in generations.GENERATIONS.values():
        for facts in (vars(gen), *(b.changes for b in gen.before)):
            named |= {facts[f] for f in _SETTINGS if facts.get(f)}
            named |= set(facts.get("host_network_env") or {})
    return frozenset(named)


def hinted(name: str) -> bool:
    return any(h in name.upper() for h in HINTS)


class Secret(str):
    """A secret value: a str (so it goes wherever a setting goes) whose repr, str() and
    format() are the mask. `name` is its variable, `origin` where it was written (an env
    file's path as the user wrote it, `-e`, `environment`, `--app-env`)."""

    name: str
    origin: str

    def __new__(cls, value: str, name: str = "", origin: str = "") -> Secret:
        self = super().__new__(cls, reveal(value))
        self.name, self.origin = name, origin
        if len(self) >= (SHORTEST if hinted(name) else SHORTEST_UNNAMED):
            _seen.add(reveal(self))
        return self

    def __repr__(self) -> str:
        return f"<secret {self.name}>" if self.name else MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> tuple[type[Secret], tuple[str, str, str]]:
        return Secret, (reveal(self), self.name, self.origin)


def reveal(value: str) -> str:
    """The real value of a setting, as a plain str: only where a container or a process is made."""
    return str.__str__(value) if isinstance(value, Secret) else value


def secret(name: str, value: str, origin: str) -> str:
    """`value` of the user's setting `name` as it is kept: a Secret unless the name is PLAIN."""
    if name in plain() and not hinted(name):
        return reveal(value)
    return Secret(value, name, origin)


def conceal(env: Mapping[str, str], origin: str) -> dict[str, str]:
    """A user's settings from `origin`, each value as `secret()` keeps it."""
    return {k: secret(k, v, origin) for k, v in env.items()}


def like(before: str, after: str) -> str:
    """`after`, derived from `before` (a port or path moved in it), as secret as `before` was."""
    if isinstance(before, Secret):
        return Secret(after, before.name, before.origin)
    return after


def is_secret(name: str, value: str) -> bool:
    return isinstance(value, Secret) or hinted(name)


def secret_names(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(k for k, v in env.items() if is_secret(k, v))


def secret_values(env: Mapping[str, str]) -> list[str]:
    # Very short values would mask unrelated text and protect nothing.
    found = {reveal(v) for k, v in env.items() if is_secret(k, v)
             and len(v) >= (SHORTEST if hinted(k) else SHORTEST_UNNAMED)}
    return sorted(found, key=len, reverse=True)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret(k, v) else v) for k, v in env.items()}


def redact_text(text: str, values: Iterable[str]) -> str:
    for v in sorted({reveal(v) for v in values} | _seen, key=len, reverse=True):
        for form in _forms(v):
            text = text.replace(form, MASK)
    return text


def _forms(value: str) -> list[str]:
    """A value as it may stand in a text: as is, inside a JSON string, escaped in HTML."""
    return list(dict.fromkeys([value, json.dumps(value)[1:-1], html.escape(value)]))


def remember(name: str, value: str) -> Secret:
    """A secret this process did not read itself (the real LLM's key, a task's secret, read
    where they are used): known to scrub() from now on."""
    return Secret(value, name, name)


def scrub(text: str) -> str:
    """`text` without any secret value this process has seen: the last net of every output."""
    return redact_text(text, ())


def scrub_argv(argv: Sequence[str]) -> list[str]:
    """A command line as it may be shown: `--app-env KEY=VALUE` as `--app-env KEY=<redacted>`."""
    out: list[str] = []
    for i, word in enumerate(argv):
        if i and argv[i - 1] == "--app-env":
            word = _masked_pair(word)
        elif word.startswith("--app-env="):
            word = "--app-env=" + _masked_pair(word.removeprefix("--app-env="))
        out.append(scrub(word))
    return out


def _masked_pair(pair: str) -> str:
    key, sep, _ = pair.partition("=")
    return f"{key}{sep}{MASK}" if sep else key


def redact_result(result: CellResult, env: Mapping[str, str], also: Iterable[str] = ()) -> CellResult:
    """`result` with the secret values of `env` (and the values `also`, secret whatever
    their names: a task file's `secrets`) replaced everywhere."""
    extra = {reveal(v) for v in also if len(v) >= SHORTEST}
    values = sorted(set(secret_values(env)) | extra, key=len, reverse=True)
    result.app_env = redact_env(result.app_env)
    if result.docker_run:
        result.docker_run = redact_text(result.docker_run, values)
    for e in result.connect.evidence:
        e.text = redact_text(e.text, values)
    for r in result.remedies:
        r.env = redact_env(r.env)
        if r.docker_run:
            r.docker_run = redact_text(r.docker_run, values)
        if r.evidence:
            r.evidence = redact_text(r.evidence, values)
        if r.fix:  # the user's own file around the change may hold a value as written
            r.fix = redact_text(r.fix, values)
    for t in result.tasks:  # an agent may echo anything it was given
        if t.detail:
            t.detail = redact_text(t.detail, values)
        t.actions = [redact_text(a, values) for a in t.actions]
        t.evidence = [redact_text(e, values) for e in t.evidence]
    result.notes = [redact_text(n, values) for n in result.notes]
    return result
