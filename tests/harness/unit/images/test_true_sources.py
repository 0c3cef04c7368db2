"""Releases from their true sources (harness/images/sources.py): the table, where a source
archive comes from and how it is checked, the wheels built from it, and what the images
say about it. No Docker: archives are tiny tar.gz files made here, GitHub is a local HTTP
server (or a closed port), and the build backend is a few lines in the archive itself."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import ImageUnavailable, InputError
from harness.images import failures, sources, wheels
from harness.images.failures import BuildFailed
from harness.images.sources import TrueSource

SOURCES_AT_START = os.environ.get("OH_MATRIX_SOURCES")  # before the fixtures clear it
SHA = "1234567890abcdef1234567890abcdef12345678"
OTHER = "fedcba0987654321fedcba0987654321fedcba09"

# A PEP 517 backend that needs nothing installed (pip runs it with --no-build-isolation):
# it writes a wheel by hand. BREAK=1 in the project's folder makes it fail.
BACKEND = textwrap.dedent('''
    import base64, hashlib, os, zipfile

    def _meta():
        name = open("NAME").read().strip()
        return name, "0.1.dev7"

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        if os.path.exists("BREAK"):
            raise SystemExit("error: this project does not build on purpose")
        name, version = _meta()
        dist = name.replace("-", "_")
        whl = f"{dist}-{version}-py3-none-any.whl"
        info = f"{dist}-{version}.dist-info"
        files = {
            f"{dist}/__init__.py": b"",
            f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n".encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        }
        record = []
        with zipfile.ZipFile(os.path.join(wheel_directory, whl), "w") as z:
            for path, data in files.items():
                z.writestr(path, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record.append(f"{path},sha256={digest},{len(data)}")
            record.append(f"{dist}-{version}.dist-info/RECORD,,")
            z.writestr(f"{dist}-{version}.dist-info/RECORD", "\\n".join(record) + "\\n")
        return whl
''')


def pyproject(name: str) -> str:
    return textwrap.dedent(f'''
        [project]
        name = "{name}"
        dynamic = ["version"]

        [build-system]
        requires = []
        build-backend = "backend"
        backend-path = ["."]
    ''')


def make_archive(path: Path, src: TrueSource, *, comment: str | None = None, top: str | None = None,
                 subdirs: tuple[str, ...] | None = None, broken: tuple[str, ...] = ()) -> Path:
    """What GitHub serves for a commit: a pax tar.gz whose global header comment is the
    commit id, with one top folder `<repo>-<commit>/`."""
    top = top or src.top
    files: dict[str, bytes] = {f"{top}/README.md": b"widgets\n"}
    for sub in subdirs if subdirs is not None else src.subdirectories:
        files[f"{top}/{sub}/pyproject.toml"] = pyproject(sub).encode()
        files[f"{top}/{sub}/backend.py"] = BACKEND.encode()
        files[f"{top}/{sub}/NAME"] = sub.encode()
        if sub in broken:
            files[f"{top}/{sub}/BREAK"] = b""
    headers = {"comment": comment if comment is not None else src.commit}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT,
                      pax_headers=headers if headers["comment"] else {}) as tar:
        folder = tarfile.TarInfo(top)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("OH_MATRIX_CACHE", str(root))
    monkeypatch.delenv(sources.ENV, raising=False)
    return root


@pytest.fixture
def src() -> TrueSource:
    return TrueSource("9.9.9", "Acme/widgets", SHA, ("pkg-a", "pkg-b"), "because the tag's lock says so")


@pytest.fixture
def closed_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """GitHub, unreachable: a port nothing listens on (refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/{{repo}}/archive/{{commit}}.tar.gz"
    monkeypatch.setattr(sources, "ARCHIVE_URL", url)
    return url


class Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, list[str]()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                data = outer.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.end_headers()
                if data is not None:
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """GitHub, reachable: a local server at ARCHIVE_URL's shape."""
    server = Server({})
    monkeypatch.setattr(sources, "ARCHIVE_URL", f"http://127.0.0.1:{server.port}/{{repo}}/archive/{{commit}}.tar.gz")
    yield server
    server.httpd.shutdown()


def one_line(e: pytest.ExceptionInfo[ImageUnavailable]) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- the table ---------------------------------------------------------------------------------

def test_the_table_says_0_61_ran_with_the_agent_sdk_commit_its_tag_locked() -> None:
    table = sources.load_table()
    s = table["0.61.0"]
    assert s.repo == "OpenHands/software-agent-sdk"
    assert s.commit == "be9725b459c0afabc18cfba89acf11dc756b42f0"
    assert s.subdirectories == ("openhands-sdk", "openhands-tools", "openhands-agent-server")
    assert s.url == ("https://github.com/OpenHands/software-agent-sdk/archive/"
                     "be9725b459c0afabc18cfba89acf11dc756b42f0.tar.gz")
    assert s.archive_name == "OpenHands-software-agent-sdk-be9725b459c0afabc18cfba89acf11dc756b42f0.tar.gz"
    assert s.top == "software-agent-sdk-be9725b459c0afabc18cfba89acf11dc756b42f0"
    for evidence in ("poetry.lock", "pyproject.toml", "be9725b-python"):
        assert evidence in s.why
    assert sources.for_release("0.62.0") is None


@pytest.mark.parametrize(("entry", "complaint"), [
    ('version = "0.61.0"\nrepo = "OpenHands/x"\ncommit = "be9725b"\nsubdirectories = ["a"]\nwhy = "w"',
     "release[0].commit: expected a full 40-hex commit id"),
    (f'version = "0.61.0"\nrepo = "x"\ncommit = "{SHA}"\nsubdirectories = ["a"]\nwhy = "w"',
     "release[0].repo: expected 'owner/name'"),
    (f'version = "0.61.0"\nrepo = "a/b"\ncommit = "{SHA}"\nsubdirectories = []\nwhy = "w"',
     "release[0].subdirectories"),
    (f'version = "0.61.0"\nrepo = "a/b"\ncommit = "{SHA}"\nsubdirectories = ["../x"]\nwhy = "w"',
     "release[0].subdirectories"),
    (f'version = "0.61.0"\nrepo = "a/b"\ncommit = "{SHA}"\nsubdirectories = ["a"]',
     "release[0]: missing 'why'"),
    (f'version = "0.61.0"\nrepo = "a/b"\ncommit = "{SHA}"\nsubdirectories = ["a"]\nwhy = "w"\nrev = "x"',
     "unknown key(s) rev"),
])
def test_a_malformed_table_entry_names_the_file_and_key(tmp_path: Path, entry: str, complaint: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[[release]]\n" + entry + "\n")
    with pytest.raises(InputError) as e:
        sources.load_table(path)
    assert str(path) in str(e.value) and complaint in str(e.value)


def test_a_release_listed_twice_is_refused(tmp_path: Path) -> None:
    entry = f'[[release]]\nversion = "1.0.0"\nrepo = "a/b"\ncommit = "{SHA}"\nsubdirectories = ["a"]\nwhy = "w"\n'
    path = tmp_path / "t.toml"
    path.write_text(entry * 2)
    with pytest.raises(InputError, match="listed twice"):
        sources.load_table(path)


# -- checking an archive -----------------------------------------------------------------------

def test_the_shared_offline_archive_is_the_0_61_commit() -> None:
    """The stand-in that this project's machines are given: OH_MATRIX_SOURCES, else the
    shared/sources folder beside the checkout or beside its parent (as .ci/run finds it)."""
    s = sources.load_table()["0.61.0"]
    repo = Path(__file__).resolve().parents[4]
    folders = [Path(p) for p in [SOURCES_AT_START] if p] + [
        repo.parent / "shared" / "sources", repo.parent.parent / "shared" / "sources"]
    found = [f / s.archive_name for f in folders if (f / s.archive_name).is_file()]
    if not found:
        pytest.skip("no shared/sources folder with the 0.61 archive on this machine")
    assert sources.problem(found[0], s) is None


def test_a_good_archive_passes(tmp_path: Path, src: TrueSource) -> None:
    assert sources.problem(make_archive(tmp_path / "a.tar.gz", src), src) is None


def test_a_truncated_archive_is_not_a_whole_gzip_tar(tmp_path: Path, src: TrueSource) -> None:
    good = make_archive(tmp_path / "a.tar.gz", src).read_bytes()
    for cut in (len(good) // 2, len(good) - 4):  # in the middle, and only the gzip trailer
        bad = tmp_path / f"cut{cut}.tar.gz"
        bad.write_bytes(good[:cut])
        assert "is not a whole gzip tar archive" in (sources.problem(bad, src) or "")
    plain = tmp_path / "plain.tar.gz"
    plain.write_text("<html>rate limited</html>")
    assert "is not a whole gzip tar archive" in (sources.problem(plain, src) or "")


def test_an_archive_of_another_commit_is_refused(tmp_path: Path, src: TrueSource) -> None:
    other = make_archive(tmp_path / "o.tar.gz", src, comment=OTHER)
    assert sources.problem(other, src) == f"is commit {OTHER} by its pax comment, not {SHA}"
    moved = make_archive(tmp_path / "m.tar.gz", src, top=f"widgets-{OTHER}")
    assert sources.problem(moved, src) == f"has top folder widgets-{OTHER}/, not widgets-{SHA}/"
    plain = make_archive(tmp_path / "p.tar.gz", src, comment="")
    assert "no pax comment" in (sources.problem(plain, src) or "")
    partial = make_archive(tmp_path / "s.tar.gz", src, subdirs=("pkg-a",))
    assert sources.problem(partial, src) == "lacks pkg-b/pyproject.toml"


# -- where the archive comes from ----------------------------------------------------------------

def test_from_the_url_when_reachable(github: Server, src: TrueSource, tmp_path: Path, cache: Path) -> None:
    data = make_archive(tmp_path / "a.tar.gz", src).read_bytes()
    github.files[f"/Acme/widgets/archive/{SHA}.tar.gz"] = data
    archive = sources.obtain(src)
    assert archive.path == cache / "sources" / f"Acme-widgets-{SHA}.tar.gz"
    assert archive.path.read_bytes() == data
    assert archive.sha256 == hashlib.sha256(data).hexdigest()
    # cached: the next call asks nobody
    assert sources.obtain(src) == archive
    assert len(github.requests) == 1


def test_from_oh_matrix_sources_when_the_url_is_not_reachable(
        closed_url: str, src: TrueSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    make_archive(folder / src.archive_name, src)
    monkeypatch.setenv(sources.ENV, str(folder))
    archive = sources.obtain(src)
    assert archive.path.read_bytes() == (folder / src.archive_name).read_bytes()
    assert f"using OH_MATRIX_SOURCES/{src.archive_name}" in capsys.readouterr().err


def test_a_url_serving_another_commit_falls_back_to_the_folder(
        github: Server, src: TrueSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    github.files[f"/Acme/widgets/archive/{SHA}.tar.gz"] = make_archive(
        tmp_path / "o.tar.gz", src, comment=OTHER).read_bytes()
    folder = tmp_path / "sources"
    folder.mkdir()
    make_archive(folder / src.archive_name, src)
    monkeypatch.setenv(sources.ENV, str(folder))
    assert sources.problem(sources.obtain(src).path, src) is None


def _setup(case: str, src: TrueSource, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """OH_MATRIX_SOURCES for one failing case; what the message must say about it."""
    folder.mkdir()
    if case == "unset":
        return "OH_MATRIX_SOURCES is not set"
    monkeypatch.setenv(sources.ENV, str(folder))
    name = src.archive_name
    if case == "corrupt":
        good = make_archive(folder / "x", src).read_bytes()
        (folder / "x").unlink()
        (folder / name).write_bytes(good[: len(good) // 2])
        return f"OH_MATRIX_SOURCES={folder}: {name} is not a whole gzip tar archive"
    if case == "other-commit":
        make_archive(folder / name, src, comment=OTHER, top=f"widgets-{OTHER}")
        return f"OH_MATRIX_SOURCES={folder}: {name} is commit {OTHER} by its pax comment, not {SHA}"
    if case == "other-top":
        make_archive(folder / name, src, top=f"widgets-{OTHER}")
        return f"{name} has top folder widgets-{OTHER}/, not widgets-{SHA}/"
    # missing: the folder holds only another commit's archive
    make_archive(folder / f"Acme-widgets-{OTHER}.tar.gz", src, comment=OTHER)
    return f"OH_MATRIX_SOURCES={folder} has no {name} (it holds Acme-widgets-{OTHER}.tar.gz)"


@pytest.mark.parametrize("case", ["unset", "corrupt", "other-commit", "other-top", "missing"])
def test_no_archive_is_one_line_naming_commit_url_and_folder(
        case: str, closed_url: str, src: TrueSource, tmp_path: Path, cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    said = _setup(case, src, tmp_path / "sources", monkeypatch)
    with pytest.raises(ImageUnavailable) as e:
        sources.obtain(src)
    text = one_line(e)
    assert isinstance(e.value, BuildFailed) and e.value.resolved_version == "9.9.9"
    assert text.startswith("openhands-ai 9.9.9 runs with pkg-a, pkg-b of Acme/widgets at commit " + SHA)
    assert f"{src.url} not reachable" in text
    assert said in text
    assert f"download that URL as {src.archive_name}" in text
    # nothing left behind but the remembered failure
    assert [p.name for p in (cache / "sources").iterdir()] == []
    assert len(list((cache / "failed").iterdir())) == 1


def test_an_archive_failure_is_remembered_until_the_folder_changes(
        github: Server, src: TrueSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    monkeypatch.setenv(sources.ENV, str(folder))
    with pytest.raises(ImageUnavailable, match="answered HTTP 404"):
        sources.obtain(src)
    with pytest.raises(ImageUnavailable) as again:
        sources.obtain(src)
    text = one_line(again)
    assert text.startswith("not rebuilt: openhands-ai 9.9.9 runs with")
    assert "oh-matrix images prune --failures" in text and str(failures.folder()) in text
    assert len(github.requests) == 1  # the known failure did not ask again
    # the user puts the archive in the folder: new inputs, tried at once
    make_archive(folder / src.archive_name, src)
    assert sources.obtain(src).sha256 == sources._sha256(folder / src.archive_name)
    assert len(github.requests) == 2


def test_a_damaged_cached_archive_is_fetched_again(github: Server, src: TrueSource, tmp_path: Path,
                                                   cache: Path) -> None:
    data = make_archive(tmp_path / "a.tar.gz", src).read_bytes()
    github.files[f"/Acme/widgets/archive/{SHA}.tar.gz"] = data
    first = sources.obtain(src)
    first.path.write_bytes(data[:100])
    assert sources.obtain(src).path.read_bytes() == data


# -- the dependency hash ---------------------------------------------------------------------------

def test_the_deps_hash_covers_the_commit_and_the_archive(tmp_path: Path, src: TrueSource) -> None:
    wheel = tmp_path / "openhands_ai-9.9.9-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    release = wheels.Release("9.9", "9.9.9", wheel)
    pins = ["a==1", "b==2"]
    plain = wheels.deps_hash(release, pins)
    # a release without true sources keeps the hash it always had (its cache stays valid)
    h = hashlib.sha256()
    for part in ("9.9.9", hashlib.sha256(b"wheel").hexdigest(), "a==1\nb==2"):
        h.update(part.encode())
        h.update(b"\0")
    assert plain == h.hexdigest()[:12]
    one = sources.Archive(src, tmp_path / "x", "aa" * 32)
    other_commit = sources.Archive(TrueSource("9.9.9", "Acme/widgets", OTHER, src.subdirectories, "w"),
                                   tmp_path / "x", "aa" * 32)
    other_bytes = sources.Archive(src, tmp_path / "x", "bb" * 32)
    hashes = {wheels.deps_hash(release, pins, [a.hash_part()]) for a in (one, other_commit, other_bytes)}
    assert len(hashes) == 3 and plain not in hashes


# -- building and labelling ---------------------------------------------------------------------

def test_each_subdirectory_becomes_a_wheel_named_in_the_label(tmp_path: Path, src: TrueSource) -> None:
    path = make_archive(tmp_path / "a.tar.gz", src)
    archive = sources.Archive(src, path, sources._sha256(path))
    built = sources.build_wheels(archive, Path(sys.executable), tmp_path / "house" / "sources")
    assert [p.name for p in built] == ["pkg_a-0.1.dev7-py3-none-any.whl", "pkg_b-0.1.dev7-py3-none-any.whl"]
    items = sources.entries(built, src)
    assert items == [{"package": "pkg-a", "version": "0.1.dev7", "repo": "Acme/widgets", "commit": SHA},
                     {"package": "pkg-b", "version": "0.1.dev7", "repo": "Acme/widgets", "commit": SHA}]
    label = sources.label_value(items)
    assert label == f"Acme/widgets@{SHA}:pkg-a==0.1.dev7,pkg-b==0.1.dev7"
    assert " " not in label and '"' not in label
    assert sources.parse_label(label) == items
    assert sources.parse_label(None) == []
    assert sources.summary(items) == "Acme/widgets@1234567 (pkg-a 0.1.dev7, pkg-b 0.1.dev7)"
    note = sources.note(items, src)
    assert note.startswith(f"pkg-a 0.1.dev7, pkg-b 0.1.dev7 built from Acme/widgets@{SHA}")
    assert note.endswith(src.why)


def test_a_subdirectory_that_does_not_build_is_a_remembered_kind_of_failure(tmp_path: Path, src: TrueSource) -> None:
    path = make_archive(tmp_path / "a.tar.gz", src, broken=("pkg-b",))
    archive = sources.Archive(src, path, sources._sha256(path))
    with pytest.raises(BuildFailed) as e:
        sources.build_wheels(archive, Path(sys.executable), tmp_path / "out")
    text = one_line(e)  # type: ignore[arg-type]
    assert text.startswith(f"9.9.9: pip wheel of Acme/widgets@{SHA[:12]}/pkg-b failed:")
    assert "does not build on purpose" in text
