"""report.html as a browser renders it: the grid's verdicts in the DOM Chromium builds, and
the screenshot kept next to the report."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from harness.model import Run
from harness.report import screenshot
from harness.report.render import render_all


def test_chromium_renders_the_grid_with_the_right_verdicts(tmp_path: Path,
                                                           synthetic_run: Callable[..., Run]) -> None:
    assert screenshot.chromium(), "scripts/setup installs Debian's chromium"
    run = synthetic_run("r1", "h", "20.10", {"0.62-host": "pass", "0.62-bridge": "fail", "latest-host": "pass"})
    written = render_all(run, tmp_path)
    png = tmp_path / "report.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = screenshot.dom(tmp_path / "report.html")
    assert dom is not None
    grid = dom[dom.index('id="grid"'):dom.index("</table>", dom.index('id="grid"'))]
    cells = {cid: cls for cls, cid in re.findall(r'<td class="(\w+)"><a href="#[^"]*" title="([^"]+)"', grid)}
    assert cells == {"0.62-host": "pass", "0.62-bridge": "fail", "latest-host": "pass"}
