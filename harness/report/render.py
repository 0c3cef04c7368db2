"""Write a run's reports next to its results.json: report.html and summary.md, and the
Markdown into GitHub's step summary when running in Actions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import OutputError
from harness.report import screenshot
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.recommend import recommend
from harness.results import write_text_atomic


def render_all(run: dict[str, Any], out: Path) -> list[Path]:
    """Set the run's recommendation (the caller writes results.json), write both reports and,
    where Chromium is installed, a screenshot of the HTML."""
    run["recommendation"] = recommend(run)
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
