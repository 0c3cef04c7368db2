"""The package's layout rules (docs/architecture.md), checked on the code as it stands: no
import cycle; each folder imports only what its row allows; the pure parts reach no I/O
(no process, socket, daemon or HTTP client, through every module they may run); every direct
import is a declared dependency; reports read only the model; adapters know neither images nor
docker; the code cites no document the repository lacks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
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


def test_no_name_at_the_top_level_is_a_prefix_of_another() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    names = top + sorted(set(FOLDERS) - {""})
    clashes = [(a, b) for a in names for b in names if a != b and b.startswith(a)]
    assert not clashes, clashes


# -- pure parts --------------------------------------------------------------------------------
# The parts that decide or read and do no I/O (docs/architecture.md, "Pure parts"): no process,
# no socket, no daemon, no HTTP. Reading the files they are named (a matrix, a compose file) is
# what a reader is for; running a command, opening a connection or asking the daemon is not.
PURE = ["harness.cells.diagnosis", "harness.cells.messages",  # the judge and its words
        "harness.host.ruleset",  # the firewall's rules as the judge weighs them
        "harness.model",  # results
        "harness.matrix", "harness.tags",  # the matrix reader, and what a release tag says
        "harness.deployments.compose", "harness.deployments.dockerrun", "harness.deployments.shell",
        "harness.deployments.spec", "harness.deployments.script",  # the readers of a user's deployment
        "harness.generations", "harness.modes",  # the two registries
        "harness.tasks", "harness.tasks.taskfile",  # the task catalog and task files
        "harness.results.recommend"]
# What does I/O: the modules (and their submodules) and the os functions that start processes.
IO_MODULES = {"subprocess", "socket", "socketserver", "http.server", "http.client", "urllib.request", "ssl",
              "asyncio", "multiprocessing", "docker", "testcontainers", "httpx", "requests", "socketio"}
IO_CALLS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp",
            "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl",
            "spawnle", "spawnlp", "spawnlpe"}


def _never_imported(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (for the type checker) and `if __name__ == "__main__":` (when the
    file is the program): blocks that importing a module never runs."""
    test = ast.unparse(node.test) if isinstance(node, ast.If) else ""
    return "TYPE_CHECKING" in test or test == "__name__ == '__main__'"


def _walk(nodes: list[ast.AST], into_functions: bool) -> Iterator[ast.AST]:
    """`nodes` and what they hold, never a block importing never runs; into function bodies or not
    (a class's body runs where it is defined, a function's when it is called)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if _never_imported(node):
            todo += getattr(node, "orelse", [])
            continue
        if not into_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        todo += list(ast.iter_child_nodes(node))


def runs(tree: ast.Module, used: frozenset[str] | None) -> list[ast.AST]:
    """What of a module may run when `used` of its names are (None: any of it): its top level,
    which importing it runs, then the functions and classes named there or in `used`, and
    those their bodies name in turn."""
    if used is None:
        return list(_walk(list(tree.body), into_functions=True))
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    out = list(_walk(list(tree.body), into_functions=False))
    todo = [*used, *(n.id for n in out if isinstance(n, ast.Name))]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        body = list(_walk([defs[name]], into_functions=True))
        out += body
        todo += [n.id for n in body if isinstance(n, ast.Name)]
    return out


def io_in(nodes: list[ast.AST]) -> set[str]:
    """The I/O these nodes name: an import of IO_MODULES, an os function that starts a process."""
    found: set[str] = set()
    for node in nodes:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found |= {n for n in names if any(n == m or n.startswith(m + ".") for m in IO_MODULES)}
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found |= {f"os.{a.name}" for a in node.names if a.name in IO_CALLS}
        if isinstance(node, ast.Attribute) and node.attr in IO_CALLS and ast.unparse(node.value) == "os":
            found.add(f"os.{node.attr}")
    return found


def imported(nodes: list[ast.AST], modules: set[str]) -> set[tuple[str, frozenset[str] | None]]:
    """The harness modules these nodes import, each with the names taken from it (None: the
    module itself, any of it: `import m`, `from package import m`)."""
    found: set[tuple[str, frozenset[str] | None]] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {(a.name, None) for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= {(m, None) for m in subs}
            if names := frozenset(a.name for a in node.names if f"{node.module}.{a.name}" not in subs):
                found.add((node.module, names))
    return found


def reach(start: str) -> dict[str, tuple[str, ...]]:
    """The I/O `start` may run, each with the chain of imports to it: through every module it
    imports, as far as what it takes from each may run (runs): a module taken whole, any of
    it; names taken from it, those and what they name; a package Python initializes on the way
    (the parent of a module imported), its top level. A module named in a string
    (importlib.import_module, generations.Generation.load) is not followed."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    trees = {m: ast.parse(p.read_text()) for m, p in paths.items()}
    done: dict[tuple[str, frozenset[str] | None], tuple[str, ...]] = {}
    todo: list[tuple[str, frozenset[str] | None, tuple[str, ...]]] = [(start, None, (start,))]
    out: dict[str, tuple[str, ...]] = {}
    while todo:
        m, used, chain = todo.pop()
        if (m, used) in done or (m, None) in done:
            continue
        done[(m, used)] = chain
        nodes = runs(trees[m], used)
        for what in io_in(nodes):
            out.setdefault(f"{m}: {what}", chain)
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]
        todo += [(p, frozenset(), (*chain, f"{p} (package)")) for p in parents]
        todo += [(n, names, (*chain, n if names is None else f"{n} ({', '.join(sorted(names))})"))
                 for n, names in imported(nodes, set(paths)) if n != m]
    return out


@pytest.mark.parametrize("module", PURE)
def test_pure_parts_reach_no_io(module: str) -> None:
    found = reach(module)
    assert not found, "; ".join(f"{what} (via {' -> '.join(chain)})" for what, chain in sorted(found.items()))


@pytest.mark.parametrize("module", PURE)
def test_pure_parts_load_no_client_of_the_daemon_or_http(module: str) -> None:
    """What importing them loads, third-party libraries' own imports included (the check
    above stops at the package's edge). Not socket: the standard library's importlib.metadata
    loads it (through email.utils) for any package, so it is the check above that keeps it out
    of the harness's own code."""
    loaded = loaded_by(module)
    assert not {"docker", "httpx", "testcontainers", "requests", "socketio"} & loaded, module


def _optional(tree: ast.Module) -> set[int]:
    """The lines of imports inside a `try` that catches ImportError: optional, used when there."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is not None
                and {"ImportError", "ModuleNotFoundError"} & set(re.findall(r"\w+", ast.unparse(h.type)))
                for h in node.handlers):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt)
                      if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def test_every_direct_import_is_a_declared_dependency() -> None:
    """What harness/ imports from outside the standard library is a distribution pyproject.toml
    declares itself (not one that another's extra happens to bring), unless the import is
    optional (inside a `try` that catches ImportError)."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = {canonicalize_name(Requirement(r).name)
                for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    provides = importlib.metadata.packages_distributions()
    missing = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        optional = _optional(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and node.lineno not in optional:
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.lineno not in optional:
                names = [node.module or ""]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"harness"}:
                dists = {canonicalize_name(d) for d in provides.get(top, [])}
                if not dists & declared:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {top} "
                                   f"({', '.join(sorted(dists)) or 'not installed'})")
    assert not missing, missing
