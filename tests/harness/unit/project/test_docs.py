"""The documentation holds together: README.md is the front page and keeps the commands CI
runs; every relative link of README.md, CONTRIBUTING.md, CHANGELOG.md and docs/ points at a
file (and a heading) that exists; docs/README.md lists every page of docs/; every OH_MATRIX_*
variable the code reads is in docs/environment.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """The fragment ids GitHub gives the page's headings: lower case, punctuation but `-` and
    `_` dropped, spaces to `-`, a repeated one numbered."""
    out: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in out:
            n += 1
            candidate = f"{slug}-{n}"
        out.add(candidate)
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    bad = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            bad.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_link_check_sees_links_and_headings() -> None:
    assert relative_links(ROOT / "README.md")
    assert "releases-built-from-their-true-sources-061" in anchors(DOCS / "images.md")
    assert "oh-matrix-run" in anchors(DOCS / "cli.md")


def test_the_docs_index_lists_every_page() -> None:
    listed = {(DOCS / t.partition("#")[0]).resolve() for t in relative_links(DOCS / "README.md")}
    pages = {p.resolve() for p in DOCS.iterdir() if p.is_file() and p.name != "README.md"}
    missing = sorted(p.name for p in pages - listed)
    assert not missing, f"docs/README.md does not list: {', '.join(missing)}"


def test_the_readme_is_a_front_page_with_the_commands_ci_runs() -> None:
    """.ci/run follows README literally: scripts/setup, then nox -s tests; nox runs the main job."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 170, "README.md is the front page: the manual goes into docs/"
    blocks = "\n".join(re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S))
    commands = {line.split(" #")[0].strip() for line in blocks.splitlines()}
    assert {"scripts/setup", "nox", "nox -s tests"} <= commands
    assert "pip install -e ." in blocks and "docs/exit-codes.md" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup" in ci and "nox -s tests" in ci


def test_every_variable_the_code_reads_is_documented() -> None:
    sources = [*(ROOT / "harness").rglob("*.py"), ROOT / "noxfile.py", *(ROOT / "scripts").iterdir(),
               ROOT / "tests" / "harness" / "conftest.py", ROOT / ".ci" / "run"]
    names = {n for p in sources if p.is_file() for n in re.findall(r"\bOH_MATRIX_[A-Z0-9_]+", p.read_text())}
    documented = set(re.findall(r"\bOH_MATRIX_[A-Z0-9_]+", (DOCS / "environment.md").read_text()))
    assert names and not names - documented, f"not in docs/environment.md: {sorted(names - documented)}"
