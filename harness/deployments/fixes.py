"""A remedy that a real rerun proved, as a change to the user's own file: a unified diff of
the compose file (the service's `environment` gains or changes the entries, edited with
ruamel.yaml's round trip so the rest of the file, comments included, stays as written), or
the user's `docker run` line with the flags added."""

from __future__ import annotations

import difflib
import io
import shlex
from typing import Any

from harness.deployments import Deployment
from harness.modes import APP_PORT_TOKEN, quote


def fix(d: Deployment, env: dict[str, str]) -> str:
    """The change that applies `env` to the deployment, as the user would make it."""
    shown = {k: v.replace(APP_PORT_TOKEN, str(d.api_host_port)) for k, v in env.items()}
    if d.kind == "compose":
        return _compose_diff(d, shown)
    return _docker_run_line(d, shown)


def _compose_diff(d: Deployment, env: dict[str, str]) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    before = d.files[d.source]
    # written back with the file's own indentation: its mappings', its lists' (dash and item)
    _, sequence, offset = load_yaml_guess_indent(before)
    keys = [len(line) - len(line.lstrip(" ")) for line in before.splitlines()
            if line.startswith(" ") and not line.lstrip().startswith(("-", "#"))]
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=min(keys) if keys else 2, sequence=sequence or 2, offset=offset or 0)
    doc: Any = yaml.load(before)
    service = doc["services"][d.service_name]
    current = service.get("environment")
    if current is None:
        service["environment"] = dict(env)
    elif isinstance(current, list):
        for key, value in env.items():
            at = next((i for i, item in enumerate(current) if str(item).split("=", 1)[0] == key), None)
            if at is None:
                current.append(f"{key}={value}")
            else:
                current[at] = f"{key}={value}"
    else:
        for key, value in env.items():
            current[key] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    after = out.getvalue()
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=d.source, tofile=d.source))


def _docker_run_line(d: Deployment, env: dict[str, str]) -> str:
    """The line as written (its own words, in a file or the matrix), with `-e KEY=VALUE`
    added right after `docker run` and any earlier value of the same keys left out."""
    line = d.files[d.source] if d.source else d.line
    words = shlex.split(line.replace("\\\n", " "), comments=True)
    kept: list[str] = []
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w in ("-e", "--env") and i + 1 < len(words) and words[i + 1].split("=", 1)[0] in env:
            skip = True
            continue
        if w.startswith(("-e=", "--env=")) and w.split("=", 1)[1].split("=", 1)[0] in env:
            continue
        kept.append(w)
    at = kept.index("run") + 1
    kept[at:at] = [part for k, v in env.items() for part in ("-e", f"{k}={v}")]
    return " ".join(quote(w) for w in kept)
