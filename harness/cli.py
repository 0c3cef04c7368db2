"""`oh-matrix`: run the matrix, read a report, check the host, clean up, manage images.

Every failure the user can cause is one line on stderr; exit codes are decided in one place
(workflow.exit_code, docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

from harness import commit, knobs, matrix, paths, version, workflow
from harness import options as run_options
from harness.errors import HarnessError, InputError
from harness.host import cleanup, docker_host
from harness.secrets import scrub, scrub_argv
from harness.workflow import EXIT_FAILED, EXIT_OK


def _err(msg: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: the exit code still says it
        print(f"oh-matrix: {scrub(msg)}", file=sys.stderr)  # an exception's message may quote a setting


def _json(data: object) -> int:
    """`--json`: what the command prints, as one JSON document on stdout."""
    print(json.dumps(data, indent=2))
    return EXIT_OK


# -- run ---------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from harness.run.cells import run_cells
    from harness.run.selection import check_selection
    from harness.run.summary import end_of_run

    options = run_options.to_options(lambda dest: getattr(args, dest), workers=args.n, k=args.k,
                                     pytest_args=args.pytest_args)
    return workflow.run(options, run_cells, report=lambda p, done: print(end_of_run(done, p.ctx.out)),
                        selection=check_selection)


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
    print(f"re-rendered from {Path(args.dir) / 'results.json'} by oh-matrix {describe()}, replacing: "
          + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    """A shipped matrix (and the task files it names) copied into a folder, to edit."""
    import re

    try:
        source = matrix.locate(args.name)
    except InputError:  # its line names --matrix, which init has not
        source = None
    if source is None or source.parent != matrix.PACKAGED:
        raise InputError(f"init {args.name}: not a shipped matrix ({', '.join(matrix.packaged())})")
    text = source.read_text()
    files = [source, *(source.parent / f for f in re.findall(r'"file:([^"]+)"', text))]
    workflow.check_writable(args.to, "init --to")  # a file in the way: one line, before any copy
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

    check_merge_folders(args.dirs, args.out)
    runs = [read_run(d) for d in args.dirs]
    seen: dict[str, str] = {}
    for d, r in zip(args.dirs, runs, strict=True):  # a copied folder is the same run: not another host
        if r.run_id in seen:
            raise InputError(f"merge: {seen[r.run_id]} and {d} hold the same run ({r.run_id}): one host's run, twice")
        seen[r.run_id] = d
    run = merge.merge(runs)
    out = Path(args.out)
    results = write_run(out, run)
    written = render_all(run, out)
    print(fleet.disagreement_text(run), fleet.groups_text(run), grid.render(run), sep="\n\n")
    print(f"\nrecommended for all {len(run.hosts)} hosts: " + fleet.recommendation_line(run.recommendation))
    for cls, rec in run.recommendation_per_host_class.items():
        print(f"recommended for {cls}: " + fleet.recommendation_line(rec))
    print("reports: " + ", ".join(str(p) for p in [results, *written]))
    return EXIT_OK


def check_merge_folders(dirs: list[str], out: str) -> None:
    """Before any run is read: two folders at least, none named twice, and an --out that can
    be written and is none of them (its results.json would replace that host's)."""
    if len(dirs) < 2:
        raise InputError("merge: give at least two run folders")
    where: dict[Path, str] = {}
    for d in dirs:
        real = Path(d).resolve()
        if real in where:
            raise InputError(f"merge: {where[real]} and {d} are the same run folder: one host's run, twice")
        where[real] = d
    if (real := Path(out).resolve()) in where:
        raise InputError(f"merge --out {out}: it is one of the run folders merged ({where[real]}): its "
                         "results.json would be replaced")
    workflow.check_writable(out, "merge --out")


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.model import read_run
    from harness.results.compare import changes, line

    first, second = read_run(args.first), read_run(args.second)
    tags = {c.tag for c in first.cells + second.cells}
    for tag in args.skip_tag:  # a tag neither run has would leave out nothing, silently
        if tag not in tags:
            raise InputError(f"compare --skip-tag {tag}: no cell of either run has this tag "
                             f"({', '.join(sorted(tags)) or 'no cells'})")
    found = changes(first, second, tuple(args.skip_tag))
    if args.json:
        _json({"first": args.first, "second": args.second, "same": not found, "differences": found})
    else:
        print("\n".join(map(line, found)) if found else "the same findings in every cell (times, ids and ports aside)")
    return EXIT_FAILED if found else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """The trend table of the runs recorded; an unreadable line is named on stderr and the
    table still printed, exit 0: the table is true for the runs it shows, a torn line is
    what a killed run leaves (the next run starts a fresh line), and the gate that must not
    miss it (`run --gate regressions`) already fails on it. A file with no run record at all
    is not a history: exit 2."""
    from harness.results import history

    path = history_file(Path(args.dir))
    entries, bad = history.read(path)
    if not entries:
        raise InputError(f"{path}: no runs recorded" + (f" ({bad[0]})" if bad else ""))
    entries = history.of_host(entries, args.host)
    if args.json:
        return _json(history.as_json(entries, bad, args.last))
    print(history.trend_table(entries, args.last))
    if bad:  # named, never skipped silently: one line however many, the first in full, the others by number
        numbers = [b.removeprefix(f"{path}:").split(":", 1)[0] for b in bad[1:]]
        more = f" (and line(s) {', '.join(numbers[:5])}{', ...' if len(numbers) > 5 else ''})" if numbers else ""
        _err(f"warning: {bad[0]}: skipped{more}")
    return EXIT_OK


def history_file(folder: Path) -> Path:
    """`history DIR`'s file, or one line saying why DIR has none to read."""
    from harness.results import history

    if not folder.is_dir():
        why = "no such folder" if not folder.exists() else "not a folder"
        raise InputError(f"history {folder}: {why} (name the folder that holds the run folders, e.g. reports)")
    path = folder / "history.jsonl"
    if not path.exists():
        where = (f": it is a run folder, its history is in {folder.absolute().parent}"
                 if (folder / "results.json").exists() else " (a run records it in the folder above its --out)")
        raise InputError(f"history {folder}: no history.jsonl here{where}")
    if problem := history.problem(path):
        raise InputError(problem)
    return path


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.host import doctor
    from harness.images import wheels

    found = [asdict(f) for f in doctor.checks()]
    try:
        python = {"name": "python3.12 (pypi backend)", "value": str(wheels.find_python312()), "warn": False}
    except HarnessError as e:
        python = {"name": "python3.12 (pypi backend)", "value": str(e), "warn": True}
    if args.json:
        return _json({"findings": found, "python312": python})
    for f in found:
        mark = "!" if f["warn"] else " "
        print(f"{mark} {f['name']:26} {f['value']}\n  {'':26} {f['meaning']}")
    print(f"{'!' if python['warn'] else ' '} {python['name']:26} {python['value']}")
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
    # no --to: the app server's newest ("latest" on its own index, which bisect walks)
    ask = bisect.Ask(args.mode, args.from_, args.to or "latest", args.task, args.backend, out, args.fresh,
                     bisect.code_id(version()))
    return bisect.run(ask, host)


# -- images ------------------------------------------------------------------------------
# Each action checks its own arguments and the knobs it reads before it asks the daemon anything.

def cmd_images_build(args: argparse.Namespace) -> int:
    from harness import images, releases
    from harness.images import wheels

    targets = []
    for tag in args.tags:
        try:
            targets.append((tag, matrix.tag_generation(tag)))
        except InputError as e:
            raise InputError(f"images build {tag}: {e}") from None
    pypi_only = [f for f, v in (("--constraints", args.constraints), ("--python312", args.python312)) if v]
    if pypi_only and args.backend == "official":  # a pull installs nothing: the flag would be ignored
        raise InputError(f"images build {pypi_only[0]}: only for the pypi backend (--backend official pulls "
                         "the images as published)")
    if args.constraints:  # read now, so an unreadable file is not found after the daemon
        wheels.read_constraints(Path(args.constraints))
    if args.python312:
        releases.check_python312(args.python312, f"--python312 {args.python312}")
    knobs.check_all()
    client = docker_host.client()
    built = images.prepare_all(client, targets, args.backend,
                               Path(args.constraints) if args.constraints else None, args.python312)
    print("\n".join(images.build_lines(built)))
    return EXIT_OK if all(isinstance(s, images.ImageSet) for s in built.values()) else EXIT_FAILED


def cmd_images_list(args: argparse.Namespace) -> int:

    paths.check_cache()  # it holds what the harness pulled: the one knob list reads
    client = docker_host.client()
    listed = client.images.list(filters={"label": "oh-matrix.image"})
    from harness.images import listing

    records = listing.image_records(listed) + listing.pulled_records(client)
    if args.json:
        return _json({"images": records})
    print("\n".join(listing.rows(records)))
    return EXIT_OK


def cmd_images_prune(args: argparse.Namespace) -> int:
    from harness import images, releases

    for tag in args.tags:
        try:
            releases.check_release(tag)
        except InputError as e:
            raise InputError(f"images prune {tag}: {e}") from None
    paths.check_cache()  # pulled.json and failed/: the one knob prune reads
    which = f" of {', '.join(args.tags)}" if args.tags else ""
    if args.failures:  # the cache alone: no daemon needed
        print(f"forgot {images.forget_failures(args.tags)} remembered build failures{which}")
        return EXIT_OK
    client = docker_host.client()
    listed = client.images.list(filters={"label": "oh-matrix.image"})
    print(f"removed {images.prune(client, listed, every=args.all, tags=args.tags)} images{which}")
    return EXIT_OK


def cmd_images_save(args: argparse.Namespace) -> int:
    from harness.images import saved

    workflow.check_writable(args.to, "images save --to")
    done = saved.save(docker_host.client(), Path(args.to))
    print(f"saved {len(done)} image(s)" + "".join(f"\n  {d}" for d in done))
    return EXIT_OK


def cmd_images_load(args: argparse.Namespace) -> int:
    from harness.images import saved

    saved.tars(Path(args.from_))  # the folder and each tar readable, before the daemon
    done = saved.load(docker_host.client(), Path(args.from_))
    print(f"loaded {len(done)} image(s)" + "".join(f"\n  {d}" for d in done))
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line like every other bad input (its usage block would
    be a dozen): the command, what is wrong, and where the help is. Exit 2, as argparse's."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("oh-matrix").strip()
        _err(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")
        sys.exit(workflow.EXIT_INPUT)


def at_least_one(value: str) -> int:
    """A count the user gives (`--last`, `-n`): 0 or less would mean nothing, not everything."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return n


def workers(value: str) -> int:
    """`-n` as pytest-xdist users type it: a count, `auto` or `logical` (the CPUs, counted as
    xdist counts them: PYTEST_XDIST_AUTO_NUM_WORKERS, else psutil's physical or logical
    count when it is installed, else the CPUs this process may run on)."""
    if value not in ("auto", "logical"):
        return at_least_one(value)
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        try:
            return at_least_one(chosen)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{value}: PYTEST_XDIST_AUTO_NUM_WORKERS: {e}") from None
    try:
        import psutil  # type: ignore[import-untyped]

        counted = psutil.cpu_count(logical=value == "logical") or psutil.cpu_count()
    except ImportError:
        counted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, counted or 1)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="oh-matrix", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a matrix (a pytest run underneath)")
    run_options.add_to(r.add_argument)  # the same table as plain pytest's (harness/options.py)
    r.add_argument("-n", type=workers, default=2, metavar="N",
                   help="cells in parallel (pytest-xdist workers): a number, auto or logical")
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
    cmp.add_argument("--json", action="store_true", help="the differences as JSON (exit 1 when there are any)")
    cmp.set_defaults(func=cmd_compare)
    h = sub.add_parser("history", help="per-cell verdicts over the last runs")
    h.add_argument("dir", nargs="?", default="reports", help="the folder of the run folders (default: reports)")
    h.add_argument("--last", type=at_least_one, default=10, metavar="N", help="this many runs (default: 10)")
    h.add_argument("--host", help="only this host's runs (as the tables head them)")
    h.add_argument("--json", action="store_true", help="the runs and the unreadable lines, as JSON")
    h.set_defaults(func=cmd_history)
    doc = sub.add_parser("doctor", help="facts about this Docker host")
    doc.add_argument("--json", action="store_true", help="the findings as JSON")
    doc.set_defaults(func=cmd_doctor)
    c = sub.add_parser("clean", help="remove what finished or crashed runs left")
    c.add_argument("--all", action="store_true", help="also runs whose process still lives")
    c.set_defaults(func=cmd_clean)
    b = sub.add_parser("bisect", help="the first release whose verdict in a mode differs, by real runs")
    b.add_argument("--mode", required=True, help="a built-in networking mode")
    b.add_argument("--from", dest="from_", required=True, metavar="TAG", help="the range's start (e.g. 0.62)")
    b.add_argument("--to", default=None, metavar="TAG",
                   help="the range's end (default: the app server's newest release on the index)")
    b.add_argument("--task", help="bisect on this built-in task's verdict instead of the connect verdict")
    b.add_argument("--backend", choices=matrix.BACKENDS, default="auto")
    b.add_argument("--out", help="the bisect's folder (default: reports/<time>-bisect-MODE)")
    b.add_argument("--fresh", action="store_true", help="run every step again, reusing no earlier step")
    b.set_defaults(func=cmd_bisect)
    images_parser(sub.add_parser("images", help="build, list, prune, save or load the OpenHands images"))
    return p


def images_parser(i: argparse.ArgumentParser) -> None:
    """`images ACTION`: each action takes only the arguments it honours."""
    act = i.add_subparsers(dest="action", required=True, metavar="{build,list,prune,save,load}")
    b = act.add_parser("build", help="pull or build the images of these releases")
    b.add_argument("tags", nargs="+", metavar="TAG", help="MAJOR.MINOR, MAJOR.MINOR.PATCH, latest or latest-N")
    b.add_argument("--backend", choices=matrix.BACKENDS, default="auto")
    b.add_argument("--constraints", help="pypi backend: pip constraints instead of the release's own lock")
    b.add_argument("--python312", help="pypi backend: the CPython 3.12 interpreter")
    b.set_defaults(func=cmd_images_build)
    ls = act.add_parser("list", help="the images the harness built or pulled")
    ls.add_argument("--json", action="store_true", help="the images as JSON")
    ls.set_defaults(func=cmd_images_list)
    pr = act.add_parser("prune", help="remove superseded builds and leftovers (TAG: only that release's)")
    pr.add_argument("tags", nargs="*", metavar="TAG", help="only these releases' images (MAJOR.MINOR or "
                                                            "MAJOR.MINOR.PATCH)")
    what = pr.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true",
                      help="every image oh-matrix built, and every official image it pulled")
    what.add_argument("--failures", action="store_true",
                      help="forget remembered build failures instead (the next build tries again)")
    pr.set_defaults(func=cmd_images_prune)
    sv = act.add_parser("save", help="docker save the base image(s) as tars in a folder")
    sv.add_argument("--to", required=True, metavar="DIR", help="the folder for the base image tars")
    sv.set_defaults(func=cmd_images_save)
    ld = act.add_parser("load", help="docker load every image tar in a folder")
    ld.add_argument("--from", dest="from_", required=True, metavar="DIR", help="the folder of image tars")
    ld.set_defaults(func=cmd_images_load)


def _write_traceback(args: argparse.Namespace) -> str:
    """The full traceback of a harness bug, in the run's folder when one was named, else in
    the cache's crashes/ folder (else the system's temporary folder): the path is returned.
    It never raises: it runs because something already went wrong, and whatever the cache,
    the disk or the arguments do then (a cache that is a file, a full disk), the user still
    gets the one line, not a second traceback. The command line and the exception's messages
    are written without any secret (--app-env's values)."""
    try:
        text = scrub(f"oh-matrix {describe()} {' '.join(scrub_argv(sys.argv[1:]))}\n\n{traceback.format_exc()}")
        name = f"oh-matrix-crash-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    except Exception:  # nothing here may raise
        text, name = scrub(traceback.format_exc()), f"oh-matrix-crash-{os.getpid()}.txt"
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


def describe() -> str:
    """This oh-matrix: its version and, run from a checkout whose commit the version does not
    name, that commit (model.oh_matrix_label)."""
    from harness.model import oh_matrix_label

    return oh_matrix_label(version(), commit())


class _Version(argparse.Action):
    """`--version`, asked of git only when given (argparse's own action formats it up front)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="the version (git's; and the commit of a checkout it runs from)")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {describe()}")
        parser.exit()


def _said(e: BaseException) -> str:
    """An exception as one line, even one whose own str() fails."""
    try:
        return " ".join(f"{type(e).__name__}: {e}".split())
    except Exception:  # a broken __str__ must not become the second crash
        return type(e).__name__


def _chosen(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's own parser, e.g. `images build`'s, for an argument only it can
    place: argparse leaves an unknown flag to the top parser, whose line would name none."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return _chosen(action.choices[getattr(args, action.dest)], args)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args, unknown = top.parse_known_args(argv)  # argparse's own usage errors exit 2 too, in one line
    if unknown:
        _chosen(top, args).error(f"unrecognized arguments: {' '.join(unknown)}")
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
