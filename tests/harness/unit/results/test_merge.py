import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.errors import InputError
from harness.model import Run as RunModel
from harness.model import read_run
from harness.report import fleet, screenshot
from harness.report.render import render_all
from harness.results import merge

Run = Callable[..., RunModel]


def test_hosts_become_a_dimension_and_recommendations_stay_per_host_class(tmp_path: Path, synthetic_run: Run) -> None:
    a = synthetic_run("aaaa1111", "ci-1", "20.10", {"0.62-host": "pass", "0.62-host-gateway": "pass"})
    b = synthetic_run("bbbb2222", "ci-2", "28.2", {"0.62-host": "pass", "0.62-host-gateway": "fail"})
    merged = merge.merge([a, b])
    ids = [c.id for c in merged.cells]
    assert ids == ["ci-1/0.62-host", "ci-1/0.62-host-gateway", "ci-2/0.62-host", "ci-2/0.62-host-gateway"]
    assert {c.tag for c in merged.cells} == {"0.62 @ ci-1", "0.62 @ ci-2"}
    per = merged.recommendation_per_host_class
    assert per["Debian 12 / Docker 20.10"].mode == "host-gateway"
    assert per["Debian 12 / Docker 28.2"].mode == "host"  # its host-gateway failed
    assert merged.merged_from == ["aaaa1111", "bbbb2222"]
    # the whole fleet: what passed on both hosts
    assert (merged.recommendation.tag, merged.recommendation.mode) == ("0.62", "host")
    assert merged.recommendation.why.startswith("Passed on all 2 hosts: 0.62 (0.62.0) is the newest release")
    assert [g.hosts for g in merged.host_groups] == [["ci-1"], ["ci-2"]]
    written = render_all(merged, tmp_path)
    html = written[0].read_text()
    assert "0.62 @ B" in html and 'id="cell-ci-2_0.62-host-gateway"' in html  # a row per host group


def test_needs_two_runs_and_a_known_schema(synthetic_run: Run) -> None:
    with pytest.raises(InputError, match="at least two"):
        merge.merge([synthetic_run("a", "h", "1", {})])


def test_a_host_label_names_the_host_instead_of_its_hostname(synthetic_run: Run) -> None:
    a = synthetic_run("aaaa1111", "fv-az123-456", "28.2", {"0.62-host": "pass"})
    a.host.label = "ubuntu-24.04"
    b = synthetic_run("bbbb2222", "build-7", "28.2", {"0.62-host": "pass"})
    merged = merge.merge([a, b])
    assert list(merged.hosts) == ["ubuntu-24.04", "build-7"]
    assert merged.hosts["ubuntu-24.04"].hostname == "fv-az123-456"  # still in the host's facts
    assert merged.cells[0].id == "ubuntu-24.04/0.62-host"


# -- a fleet: 20 hosts x 12 cells -----------------------------------------------------------

TAGS = {"0.61": "0.61.0", "0.62": "0.62.0", "latest": "1.11.0"}
MODES = ("bridge", "host", "custom-network", "host-gateway")
LOG_TAIL = "\n".join(f"12:00:{i:02d} INFO openhands.runtime: waiting for runtime, attempt {i}" for i in range(40))


def _cell(tag: str, mode: str, outcome: tuple[str, str | None], gateway: str) -> dict[str, Any]:
    verdict, cause = outcome
    evidence = ([{"source": "harness", "text": "runtime ready at http://host.docker.internal:34021"}]
                if verdict == "pass" else
                [{"source": "harness", "text": f"{cause}: the app never reached its runtime"},
                 {"source": "probe", "text": f"tcp {gateway}:34021 from the app: {cause}"},
                 {"source": "app-log", "text": LOG_TAIL}])
    tasks = ([{"name": t, "verdict": "pass", "seconds": 4.0} for t in ("create-file", "repo")]
             if verdict == "pass" else [])
    return {"id": f"{tag}-{mode}", "tag": tag, "mode": mode, "api": "v1" if tag == "latest" else "v0",
            "resolved_version": TAGS[tag], "backend": "pypi", "docker_run": f"docker run --name {mode} app",
            "tasks": tasks, "connect": {"verdict": verdict, "cause": cause, "seconds": 30.0, "evidence": evidence}}


def fleet_runs() -> list[RunModel]:
    """20 hosts: 14 stock Ubuntu hosts (bridge fails for lack of --add-host), one of them with
    a daemon of its own (--icc=false: V1's host-gateway times out), 4 Fedora hosts whose
    firewall drops the bridge's traffic to the host, 2 rootless hosts."""
    runs = []
    for i in range(20):
        os_, docker, rootless, gateway = (("Ubuntu 24.04", "28.2", False, "172.17.0.1") if i < 14 else
                                          ("Fedora 40", "27.1", False, "172.17.0.1") if i < 18 else
                                          ("Ubuntu 24.04", "28.2", True, "10.0.2.2"))
        cells = []
        for tag in TAGS:
            for mode in MODES:
                outcome: tuple[str, str | None] = ("pass", None)
                if mode == "bridge":
                    outcome = ("fail", "dns-unresolved")
                elif 14 <= i < 18 and mode in ("host-gateway", "custom-network"):
                    outcome = ("fail", "connect-timeout")
                elif i >= 18 and mode == "host":
                    outcome = ("fail", "connection-refused")
                elif i == 13 and tag == "latest" and mode == "host-gateway":
                    outcome = ("fail", "connect-timeout")
                cells.append(_cell(tag, mode, outcome, gateway))
        runs.append(RunModel.model_validate({
            "run_id": f"{i:02d}" + "ab" * 15, "started_at": "2026-11-27T03:17:00+00:00",
            "finished_at": "2026-11-27T04:02:00+00:00", "backend": "pypi",
            "host": {"hostname": f"fv-az{i:03d}", "label": f"runner-{i:02d}", "os": os_, "server_version": docker,
                     "rootless": rootless, "bridge_gateway": gateway,
                     "bridge": {"enable_icc": "false" if i == 13 else "true", "name": "docker0"}},
            "cells": cells}))
    return runs


def test_a_fleet_merges_in_well_under_a_second_into_groups_and_disagreements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = []
    for run in fleet_runs():
        d = tmp_path / run.host.label  # type: ignore[operator]
        d.mkdir()
        (d / "results.json").write_text(run.to_json())
        dirs.append(str(d))
    monkeypatch.setattr(screenshot, "screenshot", lambda html, png: False)  # Chromium is not the merge
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = tmp_path / "merged"
    t0 = time.perf_counter()
    assert cli.main(["merge", *dirs, "--out", str(out)]) == 0
    seconds = time.perf_counter() - t0
    html = (out / "report.html").read_text()
    printed = capsys.readouterr().out
    with capsys.disabled():  # the figures, for whoever runs it with -s
        print(f"\nmerge of 20 hosts x 12 cells: {seconds:.3f} s; report.html {len(html.encode()) / 1024:.0f} KiB")
    assert seconds < 1.0

    merged = read_run(out)
    assert len(merged.cells) == 240
    assert [(g.name, len(g.hosts)) for g in merged.host_groups] == [("A", 13), ("B", 4), ("C", 2), ("D", 1)]
    assert merged.host_groups[3].hosts == ["runner-13"]
    assert merged.host_groups[1].host_classes == ["Fedora 40 / Docker 27.1"]
    by_cell = {d.cell: d for d in merged.disagreements}
    # bridge fails everywhere the same way: no disagreement; 0.61/0.62 host-gateway and every
    # custom-network split by class; V1's host-gateway also splits within the Ubuntu class
    assert sorted(by_cell) == sorted(f"{t}-{m}" for t in TAGS for m in ("host", "custom-network", "host-gateway"))
    hg = by_cell["latest-host-gateway"]
    assert [(s.outcome, len(s.hosts), s.groups) for s in hg.sides] == [
        ("pass", 15, ["A", "C"]), ("fail connect-timeout", 5, ["B", "D"])]
    assert hg.sides[1].host_classes == ["Fedora 40 / Docker 27.1", "Ubuntu 24.04 / Docker 28.2"]
    assert hg.sides[1].why == "harness: connect-timeout: the app never reached its runtime"
    assert hg.sides[1].cell == "runner-14/latest-host-gateway"  # group B's first host: the cell shown
    assert not hg.by_host_class  # Ubuntu hosts on both sides
    assert by_cell["0.62-host"].by_host_class  # the rootless class, and only it, is refused
    # what the sides' hosts share and the other side's do not
    assert by_cell["0.62-host"].host_facts == {"rootless": ["False", "True"],
                                               "bridge_gateway": ["172.17.0.1", "10.0.2.2"]}
    # B's and D's hosts fail for different reasons (Fedora; the Ubuntu host with --icc=false):
    # no one fact separates the sides, two together do
    assert hg.host_facts == {
        "os & bridge.enable_icc": ["Ubuntu 24.04 & true", "Fedora 40 & true, Ubuntu 24.04 & false"],
        "server_version & bridge.enable_icc": ["28.2 & true", "27.1 & true, 28.2 & false"]}
    # no mode passed on every host; each class has its own pick
    assert merged.recommendation.cell is None
    assert merged.recommendation.why.startswith("every configuration failed on at least one of the 20 hosts")
    per = merged.recommendation_per_host_class
    assert per["Fedora 40 / Docker 27.1"].mode == "host" and per["Fedora 40 / Docker 27.1"].tag == "latest"
    assert per["Ubuntu 24.04 / Docker 28.2 rootless"].mode == "host-gateway"
    assert per["Ubuntu 24.04 / Docker 28.2"].tag == "latest"  # runner-13's V1 host-gateway fails: not that mode
    assert per["Ubuntu 24.04 / Docker 28.2"].mode == "custom-network"

    # the disagreements come first: in the terminal, summary.md and report.html
    assert printed.startswith("disagreements: 9 of 12 cells differ between the 20 hosts")
    assert "latest-host-gateway: hosts of one class disagree" in printed
    assert "  fail connect-timeout  B,D (5): runner-14, runner-15, runner-16, runner-17 +1\n" in printed
    summary = (out / "summary.md").read_text()
    assert summary.index("## Where the hosts disagree") < summary.index("## Recommendation") < summary.index("## Grid")
    assert html.index('id="disagreements"') < html.index('id="recommendation"') < html.index('id="grid"')
    # each group once: 4 groups x 3 tags grid rows, 4 x 12 cells in detail; every host's cell has its anchor
    assert summary.count("| 0.62 @ ") == 4 and html.count('<section class="cell ') == 48
    assert 'id="cell-runner-19_latest-host"' in html and 'href="#cell-runner-14_latest-host-gateway"' in html


def test_hosts_of_one_class_that_disagree_show_the_daemon_facts_that_differ(synthetic_run: Run) -> None:
    """Two daemons of one version on one machine: the class cannot tell them apart, their
    default bridges' options can."""
    a = synthetic_run("aaaa1111", "vm", "20.10.24", {"0.62-host": "pass", "0.62-host-gateway": "pass"})
    b = synthetic_run("bbbb2222", "vm", "20.10.24", {"0.62-host": "pass", "0.62-host-gateway": "fail"})
    a.host.label, b.host.label = "main", "d2-icc-off"
    a.host.bridge = {"enable_icc": "true", "name": "docker0"}
    b.host.bridge = {"enable_icc": "false", "name": "docker2"}
    a.host.docker_host, b.host.docker_host = "unix:///var/run/docker.sock", "unix:///run/ohd2/docker.sock"
    merged = merge.merge([a, b])
    [d] = merged.disagreements
    assert d.cell == "0.62-host-gateway" and not d.by_host_class
    assert d.host_facts == {"docker_host": ["unix:///var/run/docker.sock", "unix:///run/ohd2/docker.sock"],
                            "bridge.enable_icc": ["true", "false"], "bridge.name": ["docker0", "docker2"]}
    assert merged.hosts["d2-icc-off"].bridge["enable_icc"] == "false"
    text = fleet.disagreement_text(merged)
    assert text.splitlines()[-1].split() == [
        "hosts", "differ", "in", "bridge.enable_icc", "true", "/", "false;", "bridge.name", "docker0", "/", "docker2;",
        "docker_host", "unix:///var/run/docker.sock", "/", "unix:///run/ohd2/docker.sock"]


def test_a_host_class_names_rootless_remote_and_native_nftables_tables() -> None:
    from harness.model import Host
    from harness.results.merge import host_class

    plain = Host(os="Debian 12", server_version="20.10", firewall="iptables v1.8.9 (nf_tables); nftables "
                 "(no tables of its own)")
    assert host_class(plain) == "Debian 12 / Docker 20.10"
    odd = Host(os="Debian 12", server_version="20.10", rootless=True, remote=True,
               firewall="iptables v1.8.9 (nf_tables); nftables (inet filter)")
    assert host_class(odd) == "Debian 12 / Docker 20.10 rootless remote / nftables"
