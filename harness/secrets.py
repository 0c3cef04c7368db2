"""Secrets (LLM keys, tokens) never leave the process that needs them.

A value is secret when its variable is named like `*KEY*`, `*TOKEN*`, `*SECRET*` or
`*PASSWORD*`. Such values are set on the app container and nowhere else: results,
reports, JUnit and evidence (log tails included) carry `<redacted>` instead. The values
themselves travel from the controller to xdist workers in memory (workerinput), never
through a file.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.model import CellResult

HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MASK = "<redacted>"


def secret_names(env: dict[str, str]) -> frozenset[str]:
    return frozenset(k for k in env if any(h in k.upper() for h in HINTS))


def secret_values(env: dict[str, str]) -> list[str]:
    # Very short values would mask unrelated text and protect nothing.
    return sorted({v for k, v in env.items() if k in secret_names(env) and len(v) >= 4}, key=len, reverse=True)


def redact_env(env: dict[str, str]) -> dict[str, str]:
    names = secret_names(env)
    return {k: (MASK if k in names else v) for k, v in env.items()}


def redact_text(text: str, values: Iterable[str]) -> str:
    for v in values:
        text = text.replace(v, MASK)
    return text


def redact_result(result: CellResult, env: dict[str, str], also: Iterable[str] = ()) -> CellResult:
    """`result` with the secret values of `env` (and the values `also`, secret whatever
    their names: a task file's `secrets`) replaced everywhere."""
    extra = {v for v in also if len(v) >= 4}
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
    for t in result.tasks:  # an agent may echo anything it was given
        if t.detail:
            t.detail = redact_text(t.detail, values)
        t.actions = [redact_text(a, values) for a in t.actions]
        t.evidence = [redact_text(e, values) for e in t.evidence]
    result.notes = [redact_text(n, values) for n in result.notes]
    return result

