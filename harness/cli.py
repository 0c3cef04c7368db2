"""`oh-matrix`: run the matrix, read a report, check the host, clean up, manage images.

Every failure the user can cause is one line on stderr with the exit code DESIGN.md
gives: 2 bad input, 3 Docker unusable; 1 when a cell failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from harness import cleanup, docker_host, matrix
from harness.errors import EXIT_FAILED, EXIT_INPUT, EXIT_OK, HarnessError, InputError

ROOT = Path(__file__).resolve().parent.parent
MATRIX_TESTS = ROOT / "tests" / "matrix"


def _err(msg: str) -> None:
    print(f"oh-matrix: {msg}", file=sys.stderr)


# -- run ---------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from harness.session import default_out, validate

    validate(args.matrix, args.app_env, args.only, args.backend, args.llm)  # one line, exit 2, before pytest
    docker_host.client()  # exit 3 before anything is made
    if not MATRIX_TESTS.is_dir():
        raise InputError(f"matrix tests not found at {MATRIX_TESTS} (install the project with pip -e)")
    run_id = os.environ.setdefault("OH_MATRIX_RUN_ID", uuid.uuid4().hex)
    out = args.out or default_out(run_id)
    pytest_args = [str(MATRIX_TESTS), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                   "--matrix", args.matrix, "--out", out, "--junitxml", str(Path(out) / "junit.xml"),
                   "-p", "no:cacheprovider"]
    if args.backend:
        pytest_args += ["--backend", args.backend]
    for kv in args.app_env:
        pytest_args += ["--app-env", kv]
    for cell in args.only:
        pytest_args += ["--only", cell]
    if args.remedies:
        pytest_args.append("--remedies")
    if args.llm:
        pytest_args += ["--llm", args.llm]
    if args.n and args.n > 1:
        pytest_args += ["-n", str(args.n), "--dist", "load"]
    else:
        pytest_args += ["-p", "no:xdist"]
    if args.k:
        pytest_args += ["-k", args.k]
    pytest_args += args.pytest_args
    import pytest

    code = int(pytest.main(pytest_args))
    if args.gate == "regressions" and code in (0, 1):
        # Nightly: cells that always failed are known; only a change for the worse fails the job.
        results = json.loads((Path(out) / "results.json").read_text())
        return EXIT_FAILED if results.get("changes", {}).get("regressions") else EXIT_OK
    return {0: EXIT_OK, 1: EXIT_FAILED, 2: 130, 4: EXIT_INPUT, 5: EXIT_FAILED}.get(code, code)


# -- report / doctor / clean -------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import grid
    from harness.report.render import render_all
    from harness.results import read_run

    run = read_run(args.dir)
    written = render_all(run, Path(args.dir))
    print(grid.render(run))
    print(recommendation_text(run["recommendation"]))
    print("reports: " + ", ".join(str(p) for p in written))
    return EXIT_OK


def recommendation_text(rec: dict[str, object]) -> str:
    if rec.get("cell"):
        return f"recommended: {rec['cell']} ({rec.get('resolved_version')})\n  {rec.get('docker_run')}"
    if rec.get("best_remedy") and rec.get("docker_run"):
        return f"recommended, with a remedy: {rec.get('why', '')}\n  {rec['docker_run']}"
    return f"recommended: nothing. {rec.get('why', '')}"


def cmd_merge(args: argparse.Namespace) -> int:
    from harness import merge
    from harness.report import grid
    from harness.report.render import render_all
    from harness.results import read_run, write_json

    run = merge.merge([read_run(d) for d in args.dirs])
    out = Path(args.out)
    written = render_all(run, out)
    write_json(out / "results.json", run)
    print(grid.render(run))
    for cls, rec in run["recommendation_per_host_class"].items():
        print(f"[{cls}] " + recommendation_text(rec))
    print("reports: " + ", ".join(str(p) for p in [out / "results.json", *written]))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from harness import history

    path = Path(args.dir) / "history.jsonl"
    entries = history.load(path)
    if not entries:
        raise InputError(f"{path}: no runs recorded")
    print(history.trend_table(entries, args.last))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness import doctor
    from harness.images import wheels

    for f in doctor.checks():
        mark = "!" if f.warn else " "
        print(f"{mark} {f.name:26} {f.value}\n  {'':26} {f.meaning}")
    try:
        print(f"  {'python3.12 (pypi backend)':26} {wheels.find_python312()}")
    except HarnessError as e:
        print(f"! {'python3.12 (pypi backend)':26} {e}")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    report = cleanup.sweep(docker_host.client(), include_live=args.all)
    print(f"removed {report.summary()}")
    for name in report.containers + report.networks:
        print(f"  {name}")
    return EXIT_OK


# -- images ------------------------------------------------------------------------------

def cmd_images(args: argparse.Namespace) -> int:
    from harness import images

    client = docker_host.client()
    if args.action == "build":
        if not args.tags:
            raise InputError("images build: name at least one tag (e.g. 0.62)")
        targets = [(tag, matrix.default_api(tag) if tag == "latest" or tag[0].isdigit() else "v0")
                   for tag in args.tags]
        built = images.prepare_all(client, targets, args.backend,
                                   Path(args.constraints) if args.constraints else None, args.python312)
        print("\n".join(images.build_lines(built)))
        return EXIT_OK if all(isinstance(s, images.ImageSet) for s in built.values()) else EXIT_FAILED
    listed = client.images.list(filters={"label": "oh-matrix.image"})
    if args.action == "list":
        print("\n".join(images.image_rows(listed)))
        return EXIT_OK
    if args.failures:
        print(f"forgot {images.forget_failures()} remembered build failures")
        return EXIT_OK
    # prune: dangling leftovers and superseded builds (an older image of the same kind and
    # release, left by a recipe or dependency change); every oh-matrix image with --all
    from docker.errors import APIError

    removed = 0
    newest: dict[tuple[str, str], str] = {}
    for img in sorted(listed, key=lambda i: i.attrs["Created"]):
        kind, release = img.labels.get("oh-matrix.image", ""), img.labels.get("oh-matrix.release", "")
        if release:
            newest[(kind, release)] = img.id
    for img in listed:
        kind, release = img.labels.get("oh-matrix.image", ""), img.labels.get("oh-matrix.release", "")
        if release and newest.get((kind, release)) != img.id and not args.all:
            for tag in img.tags:
                try:
                    client.images.remove(tag)
                    removed += 1
                except APIError:  # a newer image is built on it, or a container uses it
                    pass
    for img in client.images.list(filters={"dangling": True}):
        try:
            client.images.remove(img.id, force=False)
            removed += 1
        except APIError:  # still used by a container or a child image: leave it
            pass
    if args.all:
        for img in listed:
            for tag in img.tags:
                client.images.remove(tag, force=True)
            removed += 1
    print(f"removed {removed} images")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oh-matrix", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a matrix (a pytest run underneath)")
    r.add_argument("--matrix", default="matrices/default.toml")
    r.add_argument("--out", help="report folder (default reports/<time>-<run>)")
    r.add_argument("--backend", choices=matrix.BACKENDS)
    r.add_argument("--app-env", action="append", default=[], metavar="KEY=VAL")
    r.add_argument("--only", action="append", default=[], metavar="TAG-MODE")
    r.add_argument("--remedies", action="store_true", help="rerun failed cells with the known fixes")
    r.add_argument("--llm", choices=["auto", "scripted", "real"],
                   help="LLM for the tasks: scripted (default without a key) or real (LLM_MODEL, LLM_API_KEY)")
    r.add_argument("--gate", choices=["failures", "regressions"], default="failures",
                   help="exit 1 on any failed cell (default) or only on a regression since the last run")
    r.add_argument("-n", type=int, default=2, help="cells in parallel (pytest-xdist workers)")
    r.add_argument("-k", help="pytest -k expression over cell ids")
    r.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="show a past run")
    rep.add_argument("dir")
    rep.set_defaults(func=cmd_report)
    mg = sub.add_parser("merge", help="one report from runs on several hosts")
    mg.add_argument("dirs", nargs="+", metavar="DIR")
    mg.add_argument("--out", required=True)
    mg.set_defaults(func=cmd_merge)
    h = sub.add_parser("history", help="per-cell verdicts over the last runs")
    h.add_argument("dir", nargs="?", default="reports")
    h.add_argument("--last", type=int, default=10)
    h.set_defaults(func=cmd_history)
    sub.add_parser("doctor", help="facts about this Docker host").set_defaults(func=cmd_doctor)
    c = sub.add_parser("clean", help="remove what finished or crashed runs left")
    c.add_argument("--all", action="store_true", help="also runs whose process still lives")
    c.set_defaults(func=cmd_clean)
    i = sub.add_parser("images", help="build, list or prune the OpenHands images")
    i.add_argument("action", choices=["build", "list", "prune"])
    i.add_argument("tags", nargs="*")
    i.add_argument("--backend", choices=matrix.BACKENDS, default="auto")
    i.add_argument("--constraints", help="pip constraints instead of the release's own lock")
    i.add_argument("--python312", help="CPython 3.12 interpreter for the pypi backend")
    i.add_argument("--all", action="store_true", help="prune: every oh-matrix image")
    i.add_argument("--failures", action="store_true",
                   help="prune: forget remembered build failures (the next build tries again)")
    i.set_defaults(func=cmd_images)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as e:
        _err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
