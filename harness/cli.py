"""`oh-matrix`: run the matrix, read a report, check the host, clean up, manage images.

Every failure the user can cause is one line on stderr; exit codes are decided in one place
(workflow.exit_code, docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import knobs, matrix, paths, workflow
from harness import options as run_options
from harness.errors import HarnessError, InputError
from harness.host import cleanup, docker_host
from harness.workflow import EXIT_FAILED, EXIT_OK


def _err(msg: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: the exit code still says it
        print(f"oh-matrix: {msg}", file=sys.stderr)


# -- run ---------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from harness.plugin import check_selection, end_of_run, run_cells

    options = run_options.to_options(lambda dest: getattr(args, dest), workers=args.n or 1, k=args.k,
                                     pytest_args=args.pytest_args)
    return workflow.run(options, run_cells, report=lambda s: print(end_of_run(s)), selection=check_selection)


# -- report / doctor / clean -------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from harness.model import read_run
    from harness.report import grid
    from harness.report.render import render_all
    from harness.results.recommend import recommend

    run = read_run(args.dir)
    if run.recommendation.cell is None and not run.recommendation.why:  # a run from before the step
        run.recommendation = recommend(run.cells)
    written = render_all(run, Path(args.dir))
    print(grid.render(run))
    print(run.recommendation.text())
    # the files are made again from results.json by this version's templates: say so, since
    # they replace what the run itself wrote
    print(f"re-rendered from {Path(args.dir) / 'results.json'} by oh-matrix {version()}, replacing: "
          + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    """A shipped matrix (and the task files it names) copied into a folder, to edit."""
    import re

    source = matrix.locate(args.name)
    if source.parent != matrix.PACKAGED:
        raise InputError(f"init {args.name}: not a shipped matrix ({', '.join(matrix.packaged())})")
    text = source.read_text()
    files = [source, *(source.parent / f for f in re.findall(r'"file:([^"]+)"', text))]
    dest = Path(args.to)
    targets = [dest / f.relative_to(source.parent) for f in files]
    if existing := [str(t) for t in targets if t.exists()]:
        raise InputError(f"init: {', '.join(existing)} already exist(s): nothing written (choose another --to)")
    for f, t in zip(files, targets, strict=True):
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text(f.read_text())
    print(f"wrote {', '.join(map(str, targets))}: run it with `oh-matrix run --matrix {targets[0]}`")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from harness.model import read_run
    from harness.output import write_run
    from harness.report import fleet, grid
    from harness.report.render import render_all
    from harness.results import merge

    run = merge.merge([read_run(d) for d in args.dirs])
    out = Path(args.out)
    results = write_run(out, run)
    written = render_all(run, out)
    print(fleet.disagreement_text(run), fleet.groups_text(run), grid.render(run), sep="\n\n")
    print(f"\nrecommended for all {len(run.hosts)} hosts: " + fleet.recommendation_line(run.recommendation))
    for cls, rec in run.recommendation_per_host_class.items():
        print(f"recommended for {cls}: " + fleet.recommendation_line(rec))
    print("reports: " + ", ".join(str(p) for p in [results, *written]))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.model import read_run
    from harness.results.compare import differences

    found = differences(read_run(args.first), read_run(args.second), tuple(args.skip_tag))
    print("\n".join(found) if found else "the same findings in every cell (times, ids and ports aside)")
    return EXIT_FAILED if found else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from harness.results import history

    path = Path(args.dir) / "history.jsonl"
    entries = history.load(path)
    if not entries:
        raise InputError(f"{path}: no runs recorded")
    print(history.trend_table(entries, args.last))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.host import doctor
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
    paths.check_cache()  # the run registry it reads is there: a bad cache is said before the daemon
    report = cleanup.sweep(docker_host.client(), include_live=args.all)
    print(f"removed {report.summary()}")
    for name in report.containers + report.networks:
        print(f"  {name}")
    return EXIT_OK


# -- bisect ------------------------------------------------------------------------------

def cmd_bisect(args: argparse.Namespace) -> int:
    from harness import bisect
    from harness.model import Host

    bisect.check(args.mode, args.from_, args.to, args.task)
    knobs.check_all()
    out = Path(args.out or workflow.REPORTS / f"{dt.datetime.now():%Y%m%d-%H%M%S}-bisect-{args.mode}")
    workflow.check_writable(str(out), "--out")
    client = docker_host.client()  # DockerUnavailable: one line, exit 3
    host = Host.model_validate(docker_host.facts(client).to_dict())
    ask = bisect.Ask(args.mode, args.from_, args.to, args.task, args.backend, out, args.fresh,
                     bisect.code_id(version()))
    return bisect.run(ask, host)


# -- images ------------------------------------------------------------------------------

def cmd_images(args: argparse.Namespace) -> int:
    from harness import images

    if args.action == "build":  # the tags and knobs are checked before the daemon is asked
        if not args.tags:
            raise InputError("images build: name at least one tag (e.g. 0.62)")
        targets = []
        for tag in args.tags:
            try:
                targets.append((tag, matrix.tag_generation(tag)))
            except InputError as e:
                raise InputError(f"images build {tag}: {e}") from None
        knobs.check_all()
    client = docker_host.client()
    if args.action == "build":
        built = images.prepare_all(client, targets, args.backend,
                                   Path(args.constraints) if args.constraints else None, args.python312)
        print("\n".join(images.build_lines(built)))
        return EXIT_OK if all(isinstance(s, images.ImageSet) for s in built.values()) else EXIT_FAILED
    if args.action in ("save", "load"):
        from harness.images import saved

        flag, folder = ("--to", args.to) if args.action == "save" else ("--from", args.from_)
        if not folder:
            raise InputError(f"images {args.action}: name the folder with {flag}")
        done = (saved.save(client, Path(folder)) if args.action == "save"
                else saved.load(client, Path(folder)))
        print(f"{'saved' if args.action == 'save' else 'loaded'} {len(done)} image(s)"
              + "".join(f"\n  {d}" for d in done))
        return EXIT_OK
    listed = client.images.list(filters={"label": "oh-matrix.image"})
    if args.action == "list":
        print("\n".join(images.image_rows(listed) + images.pulled_rows(client)))
        return EXIT_OK
    if args.failures:
        print(f"forgot {images.forget_failures()} remembered build failures")
        return EXIT_OK
    print(f"removed {images.prune(client, listed, every=args.all)} images")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oh-matrix", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a matrix (a pytest run underneath)")
    run_options.add_to(r.add_argument)  # the same table as plain pytest's (harness/options.py)
    r.add_argument("-n", type=int, default=2, help="cells in parallel (pytest-xdist workers)")
    r.add_argument("-k", help="pytest -k expression over cell ids")
    r.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    r.set_defaults(func=cmd_run)
    ini = sub.add_parser("init", help="copy a shipped matrix into a folder, to edit")
    ini.add_argument("name", nargs="?", default=matrix.DEFAULT, help=f"{', '.join(matrix.packaged())}")
    ini.add_argument("--to", default=".", help="the folder (default: this one)")
    ini.set_defaults(func=cmd_init)
    rep = sub.add_parser("report", help="render a past run's reports again from its results.json")
    rep.add_argument("dir")
    rep.set_defaults(func=cmd_report)
    mg = sub.add_parser("merge", help="one report from runs on several hosts")
    mg.add_argument("dirs", nargs="+", metavar="DIR")
    mg.add_argument("--out", required=True)
    mg.set_defaults(func=cmd_merge)
    cmp = sub.add_parser("compare", help="two runs' findings side by side (exit 1 when they differ)")
    cmp.add_argument("first", metavar="DIR")
    cmp.add_argument("second", metavar="DIR")
    cmp.add_argument("--skip-tag", action="append", default=[], metavar="TAG", help="leave this tag's cells out")
    cmp.set_defaults(func=cmd_compare)
    h = sub.add_parser("history", help="per-cell verdicts over the last runs")
    h.add_argument("dir", nargs="?", default="reports")
    h.add_argument("--last", type=int, default=10)
    h.set_defaults(func=cmd_history)
    sub.add_parser("doctor", help="facts about this Docker host").set_defaults(func=cmd_doctor)
    c = sub.add_parser("clean", help="remove what finished or crashed runs left")
    c.add_argument("--all", action="store_true", help="also runs whose process still lives")
    c.set_defaults(func=cmd_clean)
    b = sub.add_parser("bisect", help="the first release whose verdict in a mode differs, by real runs")
    b.add_argument("--mode", required=True, help="a built-in networking mode")
    b.add_argument("--from", dest="from_", required=True, metavar="TAG", help="the range's start (e.g. 0.62)")
    b.add_argument("--to", default="latest", metavar="TAG", help="the range's end (default: latest)")
    b.add_argument("--task", help="bisect on this built-in task's verdict instead of the connect verdict")
    b.add_argument("--backend", choices=matrix.BACKENDS, default="auto")
    b.add_argument("--out", help="the bisect's folder (default: reports/<time>-bisect-MODE)")
    b.add_argument("--fresh", action="store_true", help="run every step again, reusing no earlier step")
    b.set_defaults(func=cmd_bisect)
    i = sub.add_parser("images", help="build, list or prune the OpenHands images")
    i.add_argument("action", choices=["build", "list", "prune", "save", "load"])
    i.add_argument("tags", nargs="*")
    i.add_argument("--backend", choices=matrix.BACKENDS, default="auto")
    i.add_argument("--constraints", help="pip constraints instead of the release's own lock")
    i.add_argument("--python312", help="CPython 3.12 interpreter for the pypi backend")
    i.add_argument("--all", action="store_true",
                   help="prune: every image oh-matrix built, and every official image it pulled")
    i.add_argument("--to", help="save: the folder for the base image tars")
    i.add_argument("--from", dest="from_", help="load: the folder of image tars")
    i.add_argument("--failures", action="store_true",
                   help="prune: forget remembered build failures (the next build tries again)")
    i.set_defaults(func=cmd_images)
    return p


def _write_traceback(args: argparse.Namespace) -> str:
    """The full traceback of a harness bug, in the run's folder when one was named, else in
    the cache's crashes/ folder (else the system's temporary folder): the path is returned.
    It never raises: it runs because something already went wrong, and whatever the cache,
    the disk or the arguments do then (a cache that is a file, a full disk), the user still
    gets the one line, not a second traceback."""
    try:
        text = f"oh-matrix {version()} {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}"
        name = f"oh-matrix-crash-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    except Exception:  # nothing here may raise
        text, name = traceback.format_exc(), f"oh-matrix-crash-{os.getpid()}.txt"
    places: tuple[Callable[[], Path], ...] = (lambda: Path(args.out), lambda: paths.cache_root() / "crashes",
                                              lambda: Path(tempfile.gettempdir()))
    for place in places:  # each folder is found inside the try: finding one may fail too
        try:
            folder = place()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return str(folder / name)
        except Exception:  # the next place, whatever went wrong with this one
            continue
    return "(nowhere writable: printed below)\n" + text


def _said(e: BaseException) -> str:
    """An exception as one line, even one whose own str() fails."""
    try:
        return " ".join(f"{type(e).__name__}: {e}".split())
    except Exception:  # a broken __str__ must not become the second crash
        return type(e).__name__


def version() -> str:
    try:
        return importlib.metadata.version("oh-matrix")
    except importlib.metadata.PackageNotFoundError:  # a checkout used without installing it
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # argparse's own usage errors exit 2 too
    try:
        return int(args.func(args))
    except (HarnessError, KeyboardInterrupt) as e:
        _err(str(e) or "interrupted")
        return workflow.exit_code(e)
    except Exception as e:  # a bug of the harness's, or a host it did not expect: one line, exit 4
        where = _write_traceback(args)
        _err(f"internal error: {_said(e)} (full traceback: {where})")
        return workflow.EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
