"""Which release a tag names on the index, and a bisect's range: from a listing pip really
prints (a stand-in interpreter prints pip's own words), never from a table of versions."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from harness import generations, matrix, releases
from harness.errors import ImageUnavailable, InputError

LISTED = ["0.50.0", "0.57.0", "0.57.2", "0.62.0", "1.8.0", "1.9.2", "1.9.3", "1.10.0", "1.11.0"]


@pytest.mark.parametrize(("tag", "version"), [("latest", "1.11.0"), ("latest-1", "1.10.0"), ("latest-3", "1.9.2"),
                                               ("0.57", "0.57.2"), ("1.9", "1.9.3"), ("0.57.0", "0.57.0")])
def test_a_tag_names_one_release_of_the_listing(tag: str, version: str) -> None:
    assert releases.resolve(tag, LISTED) == version


@pytest.mark.parametrize(("tag", "words"), [("latest-9", "no release 9 before the newest"),
                                            ("0.58", "no openhands-ai release on the index is 0.58.x"),
                                            ("latest-0", "expected MAJOR.MINOR"), ("1", "expected MAJOR.MINOR"),
                                            ("latest-x", "expected")])
def test_a_tag_the_listing_cannot_name_is_one_line(tag: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        releases.resolve(tag, LISTED)


def test_a_range_holds_both_ends_and_what_is_between() -> None:
    assert releases.between("0.62", "latest", LISTED) == ["0.62.0", "1.8.0", "1.9.2", "1.9.3", "1.10.0", "1.11.0"]
    assert releases.between("latest-2", "latest", LISTED) == ["1.9.3", "1.10.0", "1.11.0"]
    with pytest.raises(InputError, match="is not older than"):
        releases.between("latest", "0.62", LISTED)


def _pip(tmp_path: Path, stderr: str) -> Path:
    """An interpreter whose `-m pip download` says what pip says."""
    py = tmp_path / "python"
    py.write_text(f"#!/bin/sh\ncat >&2 <<'END'\n{stderr}\nEND\nexit 1\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return py


PIP_SAYS = ("ERROR: Could not find a version that satisfies the requirement openhands-ai<0 (from versions: 0.49.1, "
            "0.62.0, 1.0.0a1, 1.0.0, 1.11.0, 0.9.0)\nERROR: No matching distribution found for openhands-ai<0")


def test_the_listing_is_pips_own_final_releases_oldest_first_and_kept(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "cache"))
    assert releases.versions(_pip(tmp_path, PIP_SAYS)) == ["0.9.0", "0.49.1", "0.62.0", "1.0.0", "1.11.0"]
    gone = _pip(tmp_path, "ERROR: Could not find a version (from versions: none)\nERROR: network unreachable")
    assert releases.versions(gone)[-1] == "1.11.0"  # fresh: not asked again
    saved = tmp_path / "cache" / "index" / "openhands-ai.json"
    saved.write_text(json.dumps({"at": time.time() - releases.FRESH_SECONDS - 1, "versions": ["0.62.0"]}))
    assert releases.versions(gone) == ["0.62.0"]  # stale, but the index cannot be read: the last listing


def test_no_index_and_no_listing_is_image_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ImageUnavailable, match="network unreachable"):
        releases.versions(_pip(tmp_path, "ERROR: (from versions: none)\nERROR: network unreachable"))


def test_latest_n_in_a_matrix_is_agent_canvas_and_api_v1_takes_the_app_servers() -> None:
    m = matrix.parse({"run": {"tasks": []}, "targets": [{"tag": "latest-4"}, {"tag": "latest", "api": "v1"},
                                                        {"tag": "canvas-1.16"}, {"tag": "1.11"}],
                      "modes": {"host": {}}}, "m.toml")
    assert [(t.tag, t.api) for t in m.targets] == [("latest-4", "canvas"), ("latest", "v1"),
                                                    ("canvas-1.16", "canvas"), ("1.11", "v1")]


def test_canvas_tags_resolve_on_the_npm_listing_and_a_bare_number_past_the_app_server_says_so() -> None:
    listed = ["1.13.0", "1.14.0", "1.15.0", "1.16.0", "1.20.0"]
    assert [releases.resolve_canvas(t, listed) for t in ("latest", "latest-1", "canvas-1.16", "1.13")] == \
        ["1.20.0", "1.16.0", "1.16.0", "1.13.0"]
    with pytest.raises(InputError, match="no release 5 before the newest"):
        releases.resolve_canvas("latest-5", listed)
    with pytest.raises(InputError, match=r"no @openhands/agent-canvas release .* is 1\.17\.x"):
        releases.resolve_canvas("canvas-1.17", listed)
    with pytest.raises(InputError, match=r"Agent Canvas's releases are named canvas-1\.16"):
        releases.resolve("1.16", ["1.10.0", "1.11.0"])


@pytest.mark.parametrize("tag", ["0.49", "0.49.1", "0.9"])
def test_a_release_older_than_the_adapter_knows_is_refused_with_why(tag: str) -> None:
    with pytest.raises(InputError, match=r"oldest release the v0 adapter knows.*0\.50\.0 to 0\.62\.0"):
        generations.for_tag(tag)
    with pytest.raises(InputError, match=r"targets\[0\]\.tag: .*older than 0.50.0"):
        matrix.parse({"targets": [{"tag": tag}], "modes": {"host": {}}}, "m.toml")


def test_a_version_that_is_no_plain_release_is_read_without_a_crash() -> None:
    assert generations.version_tuple("1.2.3rc1") is None and generations.version_tuple("main") is None
    assert generations.for_tag("1.2.3rc1").name == "v1"  # its generation by major; no floor to compare
