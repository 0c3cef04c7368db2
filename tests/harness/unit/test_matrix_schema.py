"""The matrix files' JSON Schema (docs/matrix.schema.json, docs/matrix-files.md) against the
loader (harness/matrix.py, harness/deployments): every shipped matrix matches it and loads,
the two accept the same keys in every table and the same words where the registries name
them, and both refuse the same bad files. A key added to one and not the other fails here."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness import deployments, generations, matrix, modes, releases, tasks
from harness.deployments import commands
from harness.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "matrix.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
DEFS = SCHEMA["$defs"]
SHIPPED = sorted(matrix.PACKAGED.glob("*.toml")) + sorted((ROOT / "examples").rglob("matrix*.toml"))
TASK_FILES = [matrix.PACKAGED / "tasks" / "example.toml", ROOT / "harness" / "tasks" / "catalogs" / "upstream.toml"]
MINIMAL = {"targets": [{"tag": "0.62"}], "modes": {"host": {}}}


def schema_errors(data: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data)]


def test_the_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_matrix_matches_the_schema_and_loads(path: Path) -> None:
    assert schema_errors(tomllib.loads(path.read_text())) == []
    assert matrix.load(path, run_command=commands.run).targets  # the example's `$(id -u)` runs here


@pytest.mark.parametrize("path", SHIPPED + TASK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_names_its_schema_for_editors(path: Path) -> None:
    """`#:schema PATH` on the first line (the comment editors' TOML support reads), PATH
    relative to the file, as the checkout lays them out."""
    first = path.read_text().splitlines()[0]
    m = re.fullmatch(r"#:schema (\S+)", first)
    assert m, f"{path}: first line {first!r}"
    wanted = "task-file.schema.json" if path in TASK_FILES else "matrix.schema.json"
    assert (path.parent / m.group(1)).resolve() == ROOT / "docs" / wanted


def _accepted(data: dict[str, Any]) -> set[str]:
    """The keys the loader accepts where `data` has the unknown key `zz-unknown`, as its one
    line names them ("unknown key (expected one of a, b, c)")."""
    with pytest.raises(InputError) as e:
        matrix.parse(data, str(ROOT / "m.toml"))
    m = re.search(r"zz-unknown: unknown key \(expected one of (.*)\)$", str(e.value))
    assert m, str(e.value)
    return set(m.group(1).split(", "))


def test_the_schema_and_the_loader_accept_the_same_keys() -> None:
    unknown = {"zz-unknown": 1}
    assert _accepted({**MINIMAL, **unknown}) == set(SCHEMA["properties"])
    assert _accepted({**MINIMAL, "run": unknown}) == set(DEFS["run"]["properties"])
    assert _accepted({**MINIMAL, "targets": [{"tag": "0.62", **unknown}]}) == set(DEFS["target"]["properties"])
    assert _accepted({**MINIMAL, "modes": {"host": unknown}}) == set(DEFS["mode"]["properties"])
    # a deployment's table: the matrix reads some keys itself and hands the rest to the reader
    assert deployments.KEYS | set(matrix.OWN_KEYS) == set(DEFS["deployment"]["properties"])
    with pytest.raises(InputError, match="zz-unknown: unknown key"):
        matrix.parse({"targets": [{"tag": "0.62"}], "deployments": {"d": {"docker_run": "docker run x", **unknown}}},
                     str(ROOT / "m.toml"))


def test_the_schemas_words_are_the_registries() -> None:
    run = DEFS["run"]["properties"]
    assert tuple(run["backend"]["enum"]) == matrix.BACKENDS
    assert tuple(run["llm"]["enum"]) == matrix.LLMS
    assert tuple(run["entrypoints"]["items"]["enum"]) == matrix.ENTRYPOINTS
    assert DEFS["api"]["enum"] == list(generations.GENERATIONS)
    assert SCHEMA["properties"]["modes"]["propertyNames"]["enum"] == list(modes.MODES)
    assert SCHEMA["properties"]["deployments"]["propertyNames"]["not"]["enum"] == list(modes.MODES)
    names, files = run["tasks"]["items"]["anyOf"]
    assert names["enum"] == [*tasks.CATALOG, *tasks.upstream(), tasks.UPSTREAM]
    assert files["pattern"] == f"^{tasks.FILE_PREFIX}.+"


@pytest.mark.parametrize("tag", ["0.62", "0.62.1", "1.11.0", "latest", "latest-3", "0.62x", "latest-0", "v0.62",
                                 "1", ""])
def test_the_schemas_tags_are_the_loaders(tag: str) -> None:
    pattern = DEFS["target"]["properties"]["tag"]["pattern"]
    assert bool(re.search(pattern, tag)) == bool(releases.TAG_RE.fullmatch(tag))


# What both must refuse (the loader's own rules, such as a tag named twice, are the loader's alone).
BAD: dict[str, dict[str, Any]] = {
    "no targets": {"modes": {"host": {}}},
    "no modes or deployments": {"targets": [{"tag": "0.62"}]},
    "unknown mode": {"targets": [{"tag": "0.62"}], "modes": {"sideways": {}}},
    "tag as a number": {"targets": [{"tag": 0.62}], "modes": {"host": {}}},
    "bad backend": {**MINIMAL, "run": {"backend": "docker"}},
    "zero budget": {**MINIMAL, "run": {"task_budget": 0}},
    "no entrypoints": {**MINIMAL, "run": {"entrypoints": []}},
    "unknown task": {**MINIMAL, "run": {"tasks": ["fly"]}},
    "bad env name": {**MINIMAL, "env": {"1X": "y"}},
    "env table value": {**MINIMAL, "env": {"X": {"y": 1}}},
    "deployment of two kinds": {"targets": [{"tag": "0.62"}],
                                "deployments": {"d": {"docker_run": "docker run x", "compose": "c.yml"}}},
    "deployment named as a mode": {"targets": [{"tag": "0.62"}],
                                   "deployments": {"host": {"docker_run": "docker run x"}}},
    "own_image not a boolean": {"targets": [{"tag": "0.62"}],
                                "deployments": {"d": {"docker_run": "docker run x", "own_image": "no"}}},
}


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_bad_matrices_are_refused_by_both(data: dict[str, Any]) -> None:
    assert schema_errors(data)
    with pytest.raises(InputError):
        matrix.parse(data, str(ROOT / "m.toml"))
