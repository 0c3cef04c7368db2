"""The package's layout rules (docs/architecture.md), checked on the code as it stands: no
import cycle; the data modules import neither docker nor httpx; reports read only the model;
adapters know neither images nor docker; the code cites no document the repository lacks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """Every harness module this file imports, at any depth of the file (a lazy import in a
    function is still an edge). `from harness.images import sources` is an edge to the
    submodule; `from harness.images import prepare` to the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            names = {a.name for a in node.names}
            found |= subs
            if len(subs) < len(names):  # something else than a submodule comes from the module itself
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    """module -> the harness modules it imports; a module's own parent packages are left out
    (Python initializes them first, whatever the import says)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imports(p, set(paths)) if i != m and not m.startswith(i + ".")}
            for m, p in paths.items()}


def test_no_import_cycle() -> None:
    g = graph()
    seen: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(m: str, path: list[str]) -> None:
        if seen.get(m) == 1:
            cycle = [*path[path.index(m):], m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if seen.get(m) == 2:
            return
        seen[m] = 1
        for n in sorted(g[m]):
            visit(n, [*path, m])
        seen[m] = 2

    for m in sorted(g):
        visit(m, [])


def loaded_by(*modules: str) -> set[str]:
    code = f"import sys; import {', '.join(modules)}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["harness.matrix", "harness.model", "harness.cells.diagnosis",
                                    "harness.generations", "harness.modes", "harness.results.recommend",
                                    "harness.tasks", "harness.tasks.taskfile"])
def test_data_modules_import_neither_docker_nor_httpx(module: str) -> None:
    loaded = loaded_by(module)
    assert not {"docker", "httpx", "testcontainers"} & loaded, module


def test_reports_read_only_the_model() -> None:
    renderers = {"harness.report.html", "harness.report.markdown", "harness.report.grid", "harness.report.fleet"}
    loaded = {m for m in loaded_by(*sorted(renderers)) if m.startswith("harness")}
    assert loaded <= {"harness", "harness.model", "harness.errors", "harness.report", *renderers}, loaded


def test_adapters_know_neither_images_nor_docker() -> None:
    loaded = loaded_by("harness.openhands.v0", "harness.openhands.v1")
    assert "docker" not in loaded and not any(m.startswith("harness.images") for m in loaded)


def test_the_code_cites_only_documents_the_repository_has() -> None:
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    names = {Path(f).name for f in tracked.split()} | {Path(f).name for f in (ROOT / "docs").glob("*")}
    shipped = [p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".json", ".toml", ".j2")]  # code and its data
    cited = {m for p in shipped for m in re.findall(r"[\w/.-]+\.md\b", p.read_text())}
    missing = {c for c in cited if Path(c).name not in names | {"summary.md", "report.md", "README.md"}}
    assert not missing, missing


# The folders of harness/ (docs/architecture.md, "The folders") and the folders each may
# import; "" is the top level. A folder's own modules and its parents are always allowed.
FOLDERS: dict[str, set[str]] = {
    "": set(),  # the data and the run's plumbing; exceptions below
    "deployments": {""},
    "images": {"", "host"},
    "openhands": {""},
    "host": {""},
    "tasks": {"", "host", "openhands"},
    "remedies": {"", "host", "deployments"},
    "cells": {"", "host", "tasks", "openhands", "deployments", "remedies"},
    "run": {"", "report"},
    "results": {""},
    "bisect": {"", "results", "tasks"},
    "report": {""},
    "suite": {""},
    "devtools": {"", "host", "tasks", "cells", "images"},
}
# Top-level modules that reach into folders: the front doors and the run's steps drive
# everything but the developer tools; the matrix loads deployments and task files.
REACHES = {"harness.cli": set(FOLDERS) - {"devtools"}, "harness.plugin": set(FOLDERS) - {"devtools"},
           "harness.workflow": set(FOLDERS) - {"devtools"},
           "harness.matrix": {"deployments", "tasks"}}


def folder_of(module: str) -> str:
    parts = module.split(".")[1:]
    if parts and (PACKAGE / parts[0]).is_dir():
        return parts[0]
    return ""


def test_each_folder_imports_only_the_folders_below_it() -> None:
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(FOLDERS) - {""}
    wrong = []
    for m, deps in graph().items():
        allowed = REACHES.get(m, FOLDERS[folder_of(m)])
        wrong += [f"{m} -> {d}" for d in sorted(deps) if folder_of(d) not in allowed | {folder_of(m), ""}]
    assert not wrong, wrong


def test_the_top_level_is_short_and_no_name_is_a_prefix_of_another() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 18, top
    names = top + sorted(set(FOLDERS) - {""})
    clashes = [(a, b) for a in names for b in names if a != b and b.startswith(a)]
    assert not clashes, clashes


MAX_CLASS_LINES = 160  # docs/architecture.md: a class that grows past it holds more than one part


def test_no_class_is_longer_than_the_limit() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (n := (node.end_lineno or 0) - node.lineno + 1) > MAX_CLASS_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "split these into parts: " + "; ".join(long)
