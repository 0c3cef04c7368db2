"""The report renderers and the recommendation, over two real runs (trimmed copies of
reports/20261127-102949-672c3d41 and reports/20261127-095633-abd8d7cd, which are git-ignored)
and synthetic ones. No engine needed."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.model import Recommendation, Run, TaskResult
from harness.report import render
from harness.report.html import render_html as html_of
from harness.report.markdown import render_markdown as markdown_of
from harness.report.markdown import shell_lines
from harness.results.recommend import recommend as decide
from harness.results.recommend import with_env


def decided(run: dict[str, Any]) -> Run:
    """A run as results.json holds it, read into the model, with its recommendation decided."""
    r = Run.model_validate(run)
    if not r.recommendation.cell and not r.recommendation.why:
        r.recommendation = decide(r.cells)
    return r


def recommend(run: dict[str, Any]) -> Recommendation:
    return decide(Run.model_validate(run).cells)


def render_html(run: dict[str, Any]) -> str:
    return html_of(decided(run))


def render_markdown(run: dict[str, Any]) -> str:
    return markdown_of(decided(run))

HOST = {"server_version": "20.10.24+dfsg1", "api_version": "1.41", "os": "Debian GNU/Linux 12 (bookworm)",
        "rootless": False, "bridge_gateway": "172.17.0.1", "proxies": {},
        "docker_host": "unix:///var/run/docker.sock"}
SOCK = "-v /var/run/docker.sock:/var/run/docker.sock"
V0_IMG = "oh-matrix/openhands:0.62.0-f1a66f6255"
V0_ENV = "-e SANDBOX_RUNTIME_CONTAINER_IMAGE=oh-matrix/runtime:0.62.0-f1a66f6255 -e LOG_ALL_EVENTS=true"
V1_IMG = "oh-matrix/openhands:1.11.0-0de1f75198"
LATEST_HG = (f"docker run -it --rm -e LOG_ALL_EVENTS=true {SOCK} -p 3000:3000 "
             f"--add-host host.docker.internal:host-gateway --name openhands-app {V1_IMG}")
IMPORT_ERROR = ("openhands-ai 0.61.0 from PyPI does not start with its locked dependencies (ImportError: cannot "
                "import name 'AgentExecutionStatus' from 'openhands.sdk.conversation.state'); the official image "
                "is built from the tag's own lock")
MODES = ("bridge", "host", "custom-network", "host-gateway")


def cell(tag: str, version: str | None, mode: str, verdict: str, *, cause: str | None = None,
         seconds: float | None = None, api: str = "v0", docker_run: str | None = None,
         evidence: Sequence[tuple[str, str]] = (), remedies: Sequence[dict[str, Any]] = (),
         tasks: Sequence[dict[str, Any]] = (), notes: Sequence[str] = (), reason: str | None = None,
         ) -> dict[str, Any]:
    return {"id": f"{tag}-{mode}", "tag": tag, "resolved_version": version, "mode": mode, "api": api,
            "backend": "pypi", "app_image": None, "runtime_image": None, "app_seconds": None,
            "docker_run": docker_run, "app_env": {},
            "connect": {"verdict": verdict, "cause": cause, "seconds": seconds,
                        "runtime_url": "http://host.docker.internal:46447" if seconds else None,
                        "evidence": [{"source": s, "text": t} for s, t in evidence], "reason": reason},
            "tasks": list(tasks), "remedies": list(remedies),
            "socket_mounted_in": [f"oh-matrix-672c3d41-{tag}-{mode}"] if docker_run else [], "notes": list(notes)}


def remedy(name: str, key: str, value: str, verdict: str, seconds: float, cause: str | None = None) -> dict[str, Any]:
    return {"name": name, "env": {key: value}, "why": "reach the sandbox at the bridge gateway",
            "verdict": verdict, "cause": cause, "seconds": seconds, "runtime_url": "http://172.17.0.1:41353"}


def run_of(cells: list[dict[str, Any]], run_id: str = "672c3d4136d84b8f857adfa29b8db902") -> dict[str, Any]:
    return {"schema": "oh-matrix/1", "run_id": run_id, "started_at": "2026-11-27T10:29:50+00:00",
            "finished_at": "2026-11-27T10:33:28+00:00", "backend": "auto", "host": dict(HOST), "cells": cells,
            "recommendation": {}, "matrix": "matrices/default.toml", "app_env": {}}


def dns_fail(tag: str, version: str, mode: str, api: str, seconds: float,
             fix: dict[str, Any] | None = None) -> dict[str, Any]:
    return cell(tag, version, mode, "fail", cause="dns-unresolved", seconds=seconds, api=api,
                docker_run=f"docker run -it --rm -e LOG_ALL_EVENTS=true {SOCK} -p 3000:3000 --name openhands-app x",
                evidence=[("harness", "app -> runtime: host.docker.internal does not resolve in the app container"),
                          ("probe", "from app: host.docker.internal:39265 DNS fail ([Errno -2] Name or service "
                                    "not known)"),
                          ("runtime-log", ""),
                          ("app-log", "10:30:33 - openhands:INFO: docker_runtime.py:197 - Waiting for client\n"
                                      "INFO:     172.17.0.1:37688 - \"GET /api/conversations HTTP/1.1\" 200 OK")],
                remedies=[fix] if fix else [])


def real_run() -> dict[str, Any]:
    """reports/20261127-102949-672c3d41: 0.61 image-unavailable, 0.62 and latest (1.11.0) mixed."""
    cells = [cell("0.61", "0.61.0", m, "error", cause="image-unavailable", evidence=[("harness", IMPORT_ERROR)])
             for m in MODES]
    cells += [
        dns_fail("0.62", "0.62.0", "bridge", "v0", 2.6,
                 remedy("docker-host-addr", "DOCKER_HOST_ADDR", "172.17.0.1", "pass", 22.1)),
        cell("0.62", "0.62.0", "host", "pass", seconds=22.1,
             docker_run=f"docker run -it --rm {V0_ENV} {SOCK} --network host "
                        f"--add-host host.docker.internal:host-gateway --name openhands-app {V0_IMG}"),
        cell("0.62", "0.62.0", "custom-network", "pass", seconds=24.1,
             docker_run=f"docker network create oh-matrix-672c3d41-0_62-custom-network && docker run -it --rm "
                        f"{V0_ENV} {SOCK} -p 3000:3000 --network oh-matrix-672c3d41-0_62-custom-network "
                        f"--add-host host.docker.internal:host-gateway --name openhands-app {V0_IMG}"),
        cell("0.62", "0.62.0", "host-gateway", "pass", seconds=24.2,
             docker_run=f"docker run -it --rm {V0_ENV} {SOCK} -p 3000:3000 "
                        f"--add-host host.docker.internal:host-gateway --name openhands-app {V0_IMG}"),
        dns_fail("latest", "1.11.0", "bridge", "v1", 0.7,
                 remedy("v1-url-pattern", "SANDBOX_CONTAINER_URL_PATTERN", "http://172.17.0.1:{port}", "pass", 20.1)),
        cell("latest", "1.11.0", "host", "fail", cause="dns-unresolved", seconds=2.7, api="v1",
             docker_run=f"docker run -it --rm -e AGENT_SERVER_USE_HOST_NETWORK=true {SOCK} --network host "
                        f"--add-host host.docker.internal:host-gateway --name openhands-app {V1_IMG}",
             evidence=[("harness", "sandbox -> app (callback): host.docker.internal does not resolve in the "
                                   "sandbox container"),
                       ("runtime-log", "\x1b[92m10:32:32 - LiteLLM:WARNING\x1b[0m: Failed to fetch remote model "
                                       "cost map from https://raw.githubusercontent.com/BerriAI/litellm/main/x.json")],
             remedies=[remedy("v1-url-pattern", "SANDBOX_CONTAINER_URL_PATTERN", "http://172.17.0.1:{port}",
                              "fail", 2.7, cause="dns-unresolved")],
             notes=["serialized: the V1 host-network sandbox uses fixed ports 8000-8012"]),
        cell("latest", "1.11.0", "custom-network", "pass", seconds=16.5, api="v1",
             docker_run=f"docker network create n && docker run -it --rm -e LOG_ALL_EVENTS=true {SOCK} "
                        f"-p 3000:3000 --network n --add-host host.docker.internal:host-gateway "
                        f"--name openhands-app {V1_IMG}"),
        cell("latest", "1.11.0", "host-gateway", "pass", seconds=16.3, api="v1", docker_run=LATEST_HG),
    ]
    run = run_of(cells)
    run["images"] = {"0.61": {"error": IMPORT_ERROR, "resolved_version": "0.61.0"}}
    return run


def older_run() -> dict[str, Any]:
    """reports/20261127-095633-abd8d7cd: 0.61 app-exited, 0.62 passes, latest skipped (no V1 yet);
    written before cells had `notes` or `direction`."""
    skip = "V1 (1.x, `latest`) support is not built yet: the agent-server flow needs its own adapter"
    cells = [cell("0.61", "0.61.0", m, "fail", cause="app-exited", docker_run="docker run -it --rm x",
                  evidence=[("harness", "app container exited with exit code 1 before its API answered")])
             for m in MODES]
    cells += [dns_fail("0.62", "0.62.0", "bridge", "v0", 2.6)]
    cells += [cell("0.62", "0.62.0", m, "pass", seconds=s, docker_run=f"docker run -it --rm {m} x")
              for m, s in (("host", 48.1), ("custom-network", 44.1), ("host-gateway", 40.1))]
    cells += [cell("latest", None, m, "skip", api="v1", reason=skip) for m in MODES]
    for c in cells:
        del c["notes"]
    return run_of(cells, "abd8d7cd00814ec284869dc581b6995f")


def synthetic_6x6(evidence_bytes: int) -> dict[str, Any]:
    versions = ["0.59.0", "0.60.0", "0.61.0", "0.62.0", "1.9.0", "1.11.0"]
    modes = [*MODES, "mode-5", "mode-6"]
    big = "\n".join(["x" * 99] * (evidence_bytes // 100))
    cells = []
    for i, v in enumerate(versions):
        for j, m in enumerate(modes):
            verdict = ("pass", "fail", "error", "skip")[(i + j) % 4]
            cells.append(cell(v.rsplit(".", 1)[0], v, m, verdict, seconds=10.0 + j if verdict == "pass" else None,
                              cause={"fail": "connect-timeout", "error": "image-unavailable"}.get(verdict),
                              reason="not applicable" if verdict == "skip" else None,
                              docker_run=f"docker run -it --rm {SOCK} img:{v}",
                              evidence=[("harness", "y" * 5000 + " <b>"), ("app-log", big)],
                              tasks=[{"name": "write-file", "verdict": "pass", "seconds": 3.0, "detail": "ok"}]))
    return run_of(cells)


# -- recommendation --------------------------------------------------------------------

def test_real_run_recommends_latest_with_the_documented_command() -> None:
    rec = recommend(real_run())
    assert rec.cell == "latest-host-gateway"
    assert (rec.tag, rec.resolved_version, rec.mode) == ("latest", "1.11.0", "host-gateway")
    assert rec.docker_run == LATEST_HG
    assert [a.cell for a in rec.older_alternatives] == ["0.62-host-gateway", "0.62-custom-network", "0.62-host"]
    assert rec.lost_by_older == "0.62.0 is older than 1.11.0 (V0 API instead of V1)"
    assert rec.best_remedy is None  # plain cells passed: remedies are not candidates


def test_older_run_recommends_062_and_says_latest_did_not_pass() -> None:
    rec = recommend(older_run())
    assert rec.cell == "0.62-host-gateway"
    assert "latest" in rec.why
    assert rec.older_alternatives == [] and rec.lost_by_older is None


def test_versions_compare_as_numbers() -> None:
    run = run_of([cell("1.9", "1.9.0", "host-gateway", "pass", seconds=5.0),
                  cell("1.11", "1.11.0", "host-gateway", "pass", seconds=50.0),
                  cell("0.62", "0.62.0", "host-gateway", "pass", seconds=1.0)])
    assert recommend(run).cell == "1.11-host-gateway"


def test_latest_beats_062_when_both_pass() -> None:
    run = run_of([cell("0.62", "0.62.0", "host-gateway", "pass", seconds=10.0),
                  cell("latest", "1.11.0", "bridge", "pass", seconds=90.0, api="v1")])
    rec = recommend(run)
    assert rec.cell == "latest-bridge"
    assert [a.model_dump() for a in rec.older_alternatives] == [
        {"cell": "0.62-host-gateway", "resolved_version": "0.62.0"}]


def test_ties_go_to_fewest_host_changes_then_speed() -> None:
    run = run_of([cell("latest", "1.11.0", "host", "pass", seconds=5.0, api="v1"),
                  cell("latest", "1.11.0", "bridge", "pass", seconds=1.0, api="v1"),
                  cell("latest", "1.11.0", "host-gateway", "pass", seconds=30.0, api="v1")])
    assert recommend(run).cell == "latest-host-gateway"
    same = run_of([cell("1.11", "1.11.0", "host-gateway", "pass", seconds=30.0, api="v1"),
                   cell("latest", "1.11.0", "host-gateway", "pass", seconds=12.0, api="v1")])
    assert recommend(same).cell == "latest-host-gateway"


def test_a_failed_task_disqualifies_a_connected_cell() -> None:
    run = real_run()
    for c in run["cells"]:
        if c["tag"] == "latest" and c["connect"]["verdict"] == "pass":
            c["tasks"] = [{"name": "write-file", "verdict": "fail", "seconds": 4.0, "detail": "file missing"}]
    rec = recommend(run)
    assert rec.cell == "0.62-host-gateway"
    assert "latest (1.11.0)" in rec.why


def test_nothing_passes_as_is_gives_the_best_remedy() -> None:
    run = real_run()
    for c in run["cells"]:
        if c["connect"]["verdict"] == "pass":
            c["connect"].update(verdict="fail", cause="connect-timeout")
    rec = recommend(run)
    assert rec.cell is None
    assert rec.why.startswith("no cell passed")
    best = rec.best_remedy
    assert best is not None
    assert (best.cell, best.name) == ("latest-bridge", "v1-url-pattern")  # newest release wins
    assert best.env == {"SANDBOX_CONTAINER_URL_PATTERN": "http://172.17.0.1:{port}"}
    assert "-e 'SANDBOX_CONTAINER_URL_PATTERN=http://172.17.0.1:{port}'" in best.docker_run_hint
    assert rec.docker_run == best.docker_run_hint


def test_a_remedy_in_another_mode_is_recommended_as_the_command_its_rerun_ran() -> None:
    """Under a firewall both moves pass; a network of its own asks less of the host than
    --network host even when it is slower, and the command is the one that really ran."""
    host = {**remedy("host-network-trio", "SANDBOX_USE_HOST_NETWORK", "true", "pass", 20.1),
            "mode": "host", "docker_run": "docker run --network host img"}
    own = {**remedy("own-network", "X", "1", "pass", 22.1), "env": {}, "mode": "custom-network",
           "docker_run": "docker network create n && docker run --network n img"}
    run = run_of([cell("0.62", "0.62.0", "host-gateway", "fail", cause="connect-timeout",
                       docker_run="docker run img", remedies=[host, own])])
    rec = recommend(run)
    assert rec.best_remedy is not None
    assert (rec.best_remedy.name, rec.mode) == ("own-network", "custom-network")
    assert rec.docker_run == "docker network create n && docker run --network n img"
    assert "passes with remedy own-network (in mode custom-network)" in rec.why
    page = render_html({**run, "recommendation": rec.model_dump()})
    assert "in mode <code>host</code>" in page and "in mode <code>custom-network</code>" in page


def test_nothing_passes_at_all() -> None:
    run = run_of([cell("0.62", "0.62.0", "bridge", "fail", cause="dns-unresolved"),
                  cell("latest", None, "bridge", "skip", reason="n/a")])
    rec = recommend(run)
    assert (rec.cell, rec.why, rec.best_remedy) == (None, "no cell passed", None)
    assert "Nothing to deploy" in render_html({**run, "recommendation": rec.model_dump()})


def test_with_env_adds_and_replaces_env_in_the_run_command() -> None:
    line = "docker network create n && docker run -it --rm -e A=1 -e B=2 -p 3000:3000 img"
    assert with_env(line, {"B": "x y", "C": "3"}) == \
        "docker network create n && docker run -e 'B=x y' -e C=3 -it --rm -e A=1 -p 3000:3000 img"
    assert with_env("docker run 'unclosed", {"A": "1"}) is None


# -- HTML ------------------------------------------------------------------------------

class Tags(HTMLParser):
    """Every start tag with its attributes, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    @property
    def ids(self) -> set[str | None]:
        return {a.get("id") for _, a in self.tags}


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


@pytest.mark.parametrize("make", [real_run, older_run, lambda: synthetic_6x6(2000)])
def test_html_is_self_contained_and_links_every_cell(make: Callable[[], dict[str, Any]]) -> None:
    run = make()
    html = render_html(run)
    tags = parse(html)
    for tag, attrs in tags.tags:
        if tag in ("link", "script", "img"):
            assert not re.match(r"https?://", attrs.get("src") or attrs.get("href") or ""), (tag, attrs)
        if tag == "a" and (href := attrs.get("href")):
            assert href.startswith("#") and href[1:] in tags.ids, attrs  # nothing leaves the page
    assert not any(tag in ("script", "link", "img", "iframe") for tag, _ in tags.tags)
    for c in run["cells"]:
        assert c["id"] in html
    grid_links = [a["href"] for t, a in tags.tags if t == "a" and a.get("title")]
    assert len(grid_links) == len(run["cells"])


def test_html_escapes_evidence_and_strips_colour_codes() -> None:
    run = real_run()
    run["cells"][4]["connect"]["evidence"].append({"source": "app-log", "text": "<script>alert(1)</script>\nmore"})
    html = render_html(run)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b[" not in html and "LiteLLM:WARNING" in html


def test_html_shows_the_recommendation_run_facts_and_cell_details() -> None:
    html = render_html(real_run())
    assert html.index('id="recommendation"') < html.index('id="grid"')
    assert "oh-matrix/openhands:1.11.0-0de1f75198" in html
    assert "Debian GNU/Linux 12 (bookworm)" in html and "3m 38s" in html
    assert "These containers mount the Docker socket (root-equivalent)" in html
    assert "serialized: the V1 host-network sandbox uses fixed ports 8000-8012" in html
    assert "docker-host-addr" in html and "DOCKER_HOST_ADDR=172.17.0.1" in html


def test_headless_cells_get_their_own_column_and_are_never_the_deployment() -> None:
    from harness.report import grid

    run = run_of([cell("0.62", "0.62.0", "host-gateway", "fail", cause="connect-timeout"),
                  {**cell("0.62", "0.62.0", "host-gateway", "pass", seconds=9.0), "id": "0.62-host-gateway-headless",
                   "entrypoint": "headless"}])
    text = grid.render(Run.model_validate(run))
    assert "host-gateway (headless)" in text and "FAIL connect-timeout" in text and "PASS 9s" in text
    assert "host-gateway (headless)" in render_markdown(run)
    assert recommend(run).cell is None  # a CLI that works is not a server to deploy


def test_html_renders_tasks_when_present() -> None:
    run = real_run()
    run["cells"][-1]["tasks"] = [{"name": "write-file", "verdict": "pass", "seconds": 4.2, "detail": "hello.txt"},
                                 {"name": "run-tests", "verdict": "fail", "seconds": 9.0, "detail": "1 failed"}]
    html = render_html(run)
    assert "tasks 1/2" in html and "run-tests" in html and "1 failed" in html
    assert 'class="partial"' in html


# -- Markdown --------------------------------------------------------------------------

def test_markdown_has_a_grid_row_per_tag_failures_and_the_command() -> None:
    md = render_markdown(real_run())
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| tag | bridge | host | custom-network | host-gateway |"
    assert rows[1].startswith("| 0.61 (0.61.0) | ⚠️ image-unavailable |")
    assert rows[2] == "| 0.62 (0.62.0) | ❌ dns-unresolved 🔧 | ✅ 22s | ✅ 24s | ✅ 24s |"
    assert rows[3].startswith("| latest (1.11.0) |")
    assert "`docker-host-addr` `DOCKER_HOST_ADDR=172.17.0.1` → ✅ pass in 22s" in md
    assert "**0.61-bridge**, **0.61-host**, **0.61-custom-network**, **0.61-host-gateway**" in md  # one entry
    assert "```sh\ndocker run -it --rm \\\n  -e LOG_ALL_EVENTS=true \\\n" in md


def test_markdown_of_an_older_run_lists_skips() -> None:
    md = render_markdown(older_run())
    assert "| latest | ⏭️ skip | ⏭️ skip | ⏭️ skip | ⏭️ skip |" in md
    assert "## Skipped" in md and "latest-bridge, latest-host" in md


def test_markdown_stays_small_for_a_6x6_run_with_big_evidence() -> None:
    run = synthetic_6x6(50_000)
    md = render_markdown(run)
    assert len(md.encode()) < 1024 * 1024 // 10  # far under GitHub's 1 MiB step-summary cap
    assert md.count("\n| ") == 6 + 1  # header separator aside: the header row and one per tag
    assert "x" * 99 not in md  # no log tail
    assert "y" * 199 + "…" in md and "y" * 200 not in md


def test_markdown_keeps_evidence_inert() -> None:
    run = real_run()
    run["cells"][4]["connect"]["evidence"][0]["text"] = "<script>alert(1)</script> `x` | y"
    md = render_markdown(run)
    assert "``harness: <script>alert(1)</script> `x` | y``" in md  # a code span, whatever the backticks


def test_shell_lines_is_the_same_command() -> None:
    line = real_run()["cells"][6]["docker_run"]
    shown = shell_lines(line)
    assert shown.splitlines()[0] == "docker network create oh-matrix-672c3d41-0_62-custom-network &&"
    assert " ".join(p.strip().rstrip("\\").strip() for p in shown.splitlines()) == line
    # the home folder stays the shell's to expand: quoted, `~` would be a folder of that name
    home = shell_lines("docker run -it -v ~/.openhands:/.openhands img").splitlines()
    assert "  -v ~/.openhands:/.openhands \\" in home


# -- render_all ------------------------------------------------------------------------

def test_render_all_writes_both_and_appends_the_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.screenshot, "screenshot", lambda *a, **k: False)  # see test_report_browser.py
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run = decided(real_run())
    out = tmp_path / "reports" / "r1"
    paths = render.render_all(run, out)
    assert paths == [out / "report.html", out / "summary.md"]
    assert run.recommendation.cell == "latest-host-gateway"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.md"]  # no temp files left
    md = (out / "summary.md").read_text()
    assert summary.read_text() == "# earlier step\n" + md + "\n"
    assert "latest-host-gateway" in (out / "report.html").read_text()


def test_render_all_without_actions_touches_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setattr(render.screenshot, "screenshot", lambda *a, **k: False)  # see test_report_browser.py
    run = decided(older_run())
    before = copy.deepcopy(run)
    render.render_all(run, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "summary.md"]
    assert run == before  # rendering reads the run; the recommendation was decided before



# -- the upgrade view ------------------------------------------------------------------------

def test_the_upgrade_view_names_each_modes_move_and_the_command_difference() -> None:
    from harness.report.upgrade import lines
    from harness.results import upgrade

    run = decided(real_run())
    u = upgrade.compare(run.cells, "0.62", "latest")
    moves = {m.mode: m.move for m in u.modes}
    assert moves == {"bridge": "fail -> fail", "host": "pass -> fail", "custom-network": "pass -> pass",
                     "host-gateway": "pass -> pass"}
    assert {m.mode: m.after for m in u.modes}["host"] == "fail dns-unresolved"
    assert (u.mode_before, u.mode_after) == ("host-gateway", "host-gateway")
    assert u.settings_removed == ["-e SANDBOX_RUNTIME_CONTAINER_IMAGE=oh-matrix/runtime:0.62.0-f1a66f6255"]
    assert u.settings_added == [] and u.image_after == V1_IMG
    text = "\n".join(lines(u))
    assert text.startswith("upgrade 0.62 (0.62.0) -> latest (1.11.0) on this host:")
    run.upgrade = u
    md = markdown_of(run)
    assert md.index("## Upgrade") < md.index("## Recommendation")  # asked for: first
    assert "| host | pass | fail dns-unresolved | ⚠️ pass → fail |" in md
    assert html_of(run).index('id="upgrade"') < html_of(run).index('id="recommendation"')


def test_tasks_that_change_across_the_upgrade_are_named() -> None:
    from harness.results import upgrade

    run = decided(real_run())
    for c in run.cells:
        if c.id in ("0.62-host-gateway", "latest-host-gateway"):
            c.tasks = [TaskResult(name="repo", verdict="pass" if c.tag == "0.62" else "fail")]  # type: ignore[arg-type]
    u = upgrade.compare(run.cells, "0.62", "latest")
    hg = next(m for m in u.modes if m.mode == "host-gateway")
    assert hg.tasks_changed == ["repo: pass -> fail"] and hg.move == "pass -> fail"


def test_tasks_skipped_after_the_upgrade_for_one_reason_read_as_one_line() -> None:
    from harness.results import upgrade

    run = decided(real_run())
    why = "1.x has no replay of a recorded trajectory"
    for c in run.cells:
        if c.id == "0.62-host-gateway":
            c.tasks = [TaskResult(name=n, verdict="pass") for n in ("a", "b", "c")]  # type: ignore[arg-type]
        if c.id == "latest-host-gateway":
            c.tasks = [TaskResult(name="a", verdict="skip", detail=why),  # type: ignore[arg-type]
                       TaskResult(name="b", verdict="skip", detail=why),  # type: ignore[arg-type]
                       TaskResult(name="c", verdict="pass")]  # type: ignore[arg-type]
    hg = next(m for m in upgrade.compare(run.cells, "0.62", "latest").modes if m.mode == "host-gateway")
    assert hg.tasks_changed == [f"a, b: pass -> skip ({why})"]


def test_compare_names_what_differs_and_nothing_else() -> None:
    from harness.results.compare import differences

    a, b = decided(real_run()), decided(real_run())
    b.run_id, b.started_at = "other", "2026-11-28T00:00:00+00:00"
    for c in b.cells:
        c.connect.seconds = (c.connect.seconds or 0) + 3  # times differ: not a finding
    assert differences(a, b) == []
    bridge = b.cells[4]
    assert bridge.id == "0.62-bridge"
    bridge.connect = bridge.connect.model_copy(update={"verdict": "pass", "cause": None})
    bridge.tasks = [TaskResult(name="repo", verdict="fail")]  # type: ignore[arg-type]
    assert differences(a, b) == ["0.62-bridge: connect: fail dns-unresolved -> pass",
                                 "0.62-bridge: task repo: - -> fail"]
    assert differences(a, b, skip_tags=("0.62",)) == []


def test_every_cause_has_a_troubleshooting_section_and_a_failing_cell_points_to_it() -> None:
    from harness.model import Cause

    page = (Path(__file__).resolve().parents[4] / "docs" / "troubleshooting.md").read_text()
    missing = [c.value for c in Cause if f"## `{c.value}`\n" not in page]
    assert not missing, f"docs/troubleshooting.md has no section for {missing}"
    for c in Cause:  # each section says the three things
        section = page.split(f"## `{c.value}`\n", 1)[1].split("\n## ", 1)[0]
        assert all(k in section for k in ("**In OpenHands**", "**oh-matrix showed**", "**What to do**")), c
    run = real_run()
    failed = next(c for c in run["cells"] if c["connect"].get("cause"))
    assert f"docs/troubleshooting.md#{failed['connect']['cause']}" in render_html(run)


def test_an_unreadable_history_is_said_once_in_the_summary() -> None:
    run = real_run()
    run["changes"] = {"unreadable": ["reports/history.jsonl:3: not a run record (1 error(s), first: Invalid JSON)"]}
    md = render_markdown(run)
    assert md.count("could not be read") == 1 and "history.jsonl:3: not a run record" in md


def test_a_cell_left_out_of_the_run_is_not_run_in_the_upgrade_not_a_fail() -> None:
    """--only 0.62-host-gateway --only latest-bridge: host-gateway has no latest cell."""
    from harness.results import upgrade

    run = decided(real_run())
    cells = [c for c in run.cells if c.id in ("0.62-host-gateway", "latest-bridge")]
    moves = {m.mode: m.move for m in upgrade.compare(cells, "0.62", "latest").modes}
    assert moves == {"host-gateway": "pass -> not run", "bridge": "not run -> fail"}


def test_an_upgrade_from_a_deployments_own_image_is_that_deployment_on_the_new_release() -> None:
    """upgrade_from = "own-mine": mine as it runs today -> mine on latest; other modes aside."""
    from harness.model import CellResult
    from harness.results import upgrade

    own = {**cell("own-mine", "0.62.0", "mine", "pass", seconds=20), "id": "own-mine", "backend": "own"}
    cells = [CellResult.model_validate(c) for c in (
        own, cell("latest", "1.11.0", "mine", "fail", cause="connection-refused", seconds=5),
        cell("latest", "1.11.0", "bridge", "pass", seconds=9))]
    u = upgrade.compare(cells, "own-mine", "latest")
    assert [(m.mode, m.move) for m in u.modes] == [("mine", "pass -> fail")]
    assert (u.before_version, u.after_version) == ("0.62.0", "1.11.0")
