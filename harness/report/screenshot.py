"""What a person sees: the report rendered by headless Chromium (Debian's `chromium`), as a
PNG next to it and as the DOM the browser built. Best effort: no browser, no picture."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.output import write_bytes_atomic

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# Debian's and Ubuntu's package names, then Google's build (what hosted CI runners have).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _run(args: list[str]) -> subprocess.CompletedProcess[str] | None:
    browser = chromium()
    if not browser:
        return None
    with tempfile.TemporaryDirectory(prefix="oh-matrix-chromium-") as profile:
        try:
            return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                                  capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            return None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the last chunk: a PNG without it was cut short


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 1800) -> bool:
    """Rendered in a scratch folder, kept only when whole (Chromium writes what fits on a
    full disk and still exits 0), then moved in atomically."""
    with tempfile.TemporaryDirectory(prefix="oh-matrix-shot-") as scratch:
        shot = Path(scratch) / "report.png"
        proc = _run([f"--window-size={width},{height}", f"--screenshot={shot}", html.resolve().as_uri()])
        if not proc or not shot.exists():
            return False
        data = shot.read_bytes()
        if not (data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END)):
            return False
    write_bytes_atomic(png, data)
    return True


def dom(html: Path) -> str | None:
    proc = _run(["--dump-dom", html.resolve().as_uri()])
    return proc.stdout if proc and proc.returncode == 0 else None
