"""Where state is kept: the user's cache folder as the platform defines it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import paths
from harness.report import screenshot


def test_cache_honours_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OH_MATRIX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "xdg" / "oh-matrix"
    assert (tmp_path / "xdg" / "oh-matrix").is_dir()


def test_oh_matrix_cache_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "mine"))
    assert paths.cache_root() == tmp_path / "mine"


def test_screenshot_finds_google_chrome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chrome = tmp_path / "google-chrome"
    chrome.write_text("#!/bin/sh\n")
    chrome.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert screenshot.chromium() == str(chrome)
