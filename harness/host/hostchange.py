"""Changes to this machine that a remedy may make for the length of one rerun, each undone
afterwards and checked: the file is byte-identical to before, or the run says it is not."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import InputError, OutputError

HOSTS = Path("/etc/hosts")


@contextmanager
def hosts_entry(ip: str, name: str, path: Path | None = None) -> Iterator[str]:
    """`ip name` appended to the hosts file, removed after; yields what was done, in words.
    Written in place: in a container /etc/hosts is a bind mount that cannot be renamed over."""
    path = path or HOSTS
    if os.geteuid() != 0 and not os.access(path, os.W_OK):
        raise InputError(f"{path}: a host change needs write access (run as root)")
    before = path.read_bytes()
    line = f"{ip} {name}  # oh-matrix remedy, removed after the rerun (pid {os.getpid()})\n".encode()
    sep = b"" if not before or before.endswith(b"\n") else b"\n"
    path.write_bytes(before + sep + line)
    try:
        yield f"added '{ip} {name}' to {path} for the rerun; removed after it, the file is as before"
    finally:
        now = path.read_bytes()
        path.write_bytes(now.replace(sep + line, b"", 1))
        if path.read_bytes() != before:
            raise OutputError(f"{path}: could not restore it after a remedy's rerun; remove the line "
                              f"'{line.decode().strip()}' by hand")


@contextmanager
def folders(paths: tuple[str, ...]) -> Iterator[str]:
    """Folders made on this machine for the length of one rerun, open to any user (a
    container's user is its own uid), and removed after with every ancestor made for them;
    yields what was done, in words. A path that exists already is never touched."""
    made: list[Path] = []
    for path in map(Path, paths):
        top = next((q for q in [*reversed(path.parents), path] if not q.exists()), None)
        if top is None:
            continue
        path.mkdir(parents=True)
        for q in [top, *[p for p in path.parents if top in p.parents], path]:
            q.chmod(0o777)
        made.append(top)
    try:
        yield (f"made {', '.join(paths)} on this machine for the rerun (open to the app's user, as a folder "
               f"owned by it would be); removed after it")
    finally:
        import shutil

        for top in made:
            shutil.rmtree(top, ignore_errors=True)
        if left := [str(t) for t in made if t.exists()]:
            raise OutputError(f"could not remove {', '.join(left)} after a remedy's rerun; remove it by hand")
