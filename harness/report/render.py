"""Write a run's reports next to its results.json: report.html and summary.md, and the
Markdown into GitHub's step summary when running in Actions."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import OutputError
from harness.model import Run
from harness.output import write_text_atomic
from harness.report import screenshot
from harness.report.html import render_html
from harness.report.markdown import render_markdown


def render_all(run: Run, out: Path) -> list[Path]:
    """Write both reports of a decided run and, where Chromium is installed, a screenshot of
    the HTML. Reads the run; changes nothing in it."""
    markdown = render_markdown(run)
    written = [out / "report.html", out / "summary.md"]
    write_text_atomic(written[0], render_html(run))
    write_text_atomic(written[1], markdown)
    if screenshot.screenshot(written[0], out / "report.png"):  # what a person sees, kept with the run
        written.append(out / "report.png")
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        try:
            with open(summary, "a", encoding="utf-8") as f:  # other steps append here too
                f.write(markdown + "\n")
        except OSError as e:
            raise OutputError(f"$GITHUB_STEP_SUMMARY {summary}: cannot append: {e.strerror or e}") from None
    return written
