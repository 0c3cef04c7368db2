"""A real proxy between the parts: Debian's tinyproxy, run by the test in a network namespace
of its own (tests/harness/tinyproxy.py: the corporate proxy, which cannot reach this
machine's Docker addresses and answers `500 Unable to connect` for them), set for the app
server's 0.62, its last release 1.11 (and, through OH_AGENT_SERVER_ENV, its sandbox), Agent
Canvas (`latest`) and a caller, with and without NO_PROXY, in one `oh-matrix run`:

- host-gateway: HTTP_PROXY on the app, no NO_PROXY;
- custom-network: HTTP_PROXY and NO_PROXY on the app, and OH_AGENT_SERVER_ENV giving the 1.x
  sandbox HTTP_PROXY without NO_PROXY (0.62 and Canvas do not read it);
- a caller on the default bridge with HTTP_PROXY, against the custom-network apps (whose own
  calls do not go through the proxy) of 0.62 and Canvas.

Each `proxy` verdict names the proxy and quotes what it answered, and each remedy (no-proxy,
sandbox-no-proxy, caller-no-proxy) is proven by its rerun; the proxy's own log shows it was
asked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import docker
import pytest
import tinyproxy

from harness.host import cleanup

pytestmark = [pytest.mark.engine, pytest.mark.release]
ROOT = Path(__file__).resolve().parents[2]
ANSWER = "HTTP/1.0 500 Unable to connect"  # tinyproxy's own, for what it cannot reach


def matrix(proxy: str) -> str:
    sandbox = json.dumps({"HTTP_PROXY": proxy})
    return f"""
[run]
tasks = []
[[targets]]
tag = "0.62"
[[targets]]
tag = "1.11"
[[targets]]
tag = "latest"
[modes.host-gateway]
env = {{ HTTP_PROXY = "{proxy}" }}
[modes.custom-network.env]
HTTP_PROXY = "{proxy}"
NO_PROXY = "host.docker.internal,localhost,127.0.0.1"
OH_AGENT_SERVER_ENV = '{sandbox}'
[callers.proxied]
network = "bridge"
url = "http://host.docker.internal:{{port}}"
extra_hosts = ["host.docker.internal:host-gateway"]
env = {{ HTTP_PROXY = "{proxy}" }}
[[expect]]
cause = "proxy"
mode = "host-gateway"
verdict = "fail"
reason = "the app's HTTP client asks a proxy that cannot reach the runtime"
[[expect]]
cell = "1.11-custom-network"
verdict = "fail"
cause = "proxy"
reason = "OH_AGENT_SERVER_ENV gives the sandbox a proxy, and no NO_PROXY"
[[expect]]
caller = "proxied"
verdict = "fail"
cause = "proxy"
reason = "the caller's HTTP client asks a proxy that cannot reach the app"
"""


@pytest.fixture
def proxy() -> Iterator[tinyproxy.Proxy]:
    with tinyproxy.corporate() as p:
        yield p
    names = [line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                         text=True).stdout.splitlines() if line.strip()]
    assert tinyproxy.NETNS not in names


def evidence(cell: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in cell["connect"]["evidence"])


def tried(cell: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in cell["remedies"]}


def test_proxies_between_the_parts_are_named_with_their_answer_and_no_proxy_is_proven(
        client: docker.DockerClient, proxy: tinyproxy.Proxy, tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(matrix(proxy.url))
    out = tmp_path / "run"
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "m.toml"),
                      "--backend", "pypi", "--remedies", "--out", str(out),
                      "-k", "not via or (custom-network and not 1.11)"], cwd=ROOT, timeout=3000)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert sorted(cells) == sorted([
        "0.62-host-gateway", "0.62-custom-network", "1.11-host-gateway", "1.11-custom-network",
        "latest-host-gateway", "latest-custom-network",
        "0.62-custom-network-via-proxied", "latest-custom-network-via-proxied"])

    # The app's own HTTP client through the proxy, without NO_PROXY: named with the proxy's answer
    for cid in ("0.62-host-gateway", "1.11-host-gateway"):
        c = cells[cid]["connect"]
        assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "proxy", "app->runtime"), c
        # the proxy's own answer, quoted (measured: 0.62 '500 Unable to connect', 1.11 '426 Upgrade Required')
        assert f"{proxy.url}, which answers 'HTTP/1.0 " in evidence(cells[cid]), evidence(cells[cid])
        assert c["seconds"] < 30, c  # decided at once, not after a client's timeout
        fixed = tried(cells[cid])["no-proxy"]
        assert fixed["verdict"] == "pass", fixed
        assert "host.docker.internal" in fixed["env"]["NO_PROXY"]

    # with NO_PROXY covering the runtime host: the app reaches its runtime directly
    assert cells["0.62-custom-network"]["connect"]["verdict"] == "pass", cells["0.62-custom-network"]["connect"]

    # The 1.x sandbox given the proxy by OH_AGENT_SERVER_ENV: the app says ready, its webhooks
    # go to the proxy, which answers its error; its NO_PROXY there too passes
    c = cells["1.11-custom-network"]["connect"]
    assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "proxy", "sandbox->app"), c
    why = evidence(cells["1.11-custom-network"])
    assert "OH_AGENT_SERVER_ENV" in why and proxy.url in why and ANSWER in why, why
    fixed = tried(cells["1.11-custom-network"])["sandbox-no-proxy"]
    assert fixed["verdict"] == "pass", fixed
    sandbox = json.loads(fixed["env"]["OH_AGENT_SERVER_ENV"])
    assert sandbox["HTTP_PROXY"] == proxy.url and "host.docker.internal" in sandbox["NO_PROXY"], sandbox

    # Agent Canvas: its parts call each other on the container's loopback, which its
    # clients do not ask the proxy for
    for cid in ("latest-host-gateway", "latest-custom-network"):
        assert cells[cid]["connect"]["verdict"] == "pass", cells[cid]["connect"]

    # A caller behind the proxy: its first call gets the proxy's answer; NO_PROXY fixes it
    for cid in ("0.62-custom-network-via-proxied", "latest-custom-network-via-proxied"):
        c = cells[cid]["connect"]
        assert (c["verdict"], c["cause"], c["direction"]) == ("fail", "proxy", "caller->app"), c
        assert c["seconds"] < 15 and f"answered '{ANSWER}'" in evidence(cells[cid]), evidence(cells[cid])
        fixed = tried(cells[cid])["caller-no-proxy"]
        assert fixed["verdict"] == "pass", fixed
        assert "+-e NO_PROXY=host.docker.internal" in fixed["fix"], fixed["fix"]

    # the proxy was really asked, from this machine's end of its pair (Docker masquerades the
    # bridges' traffic), and reached nothing
    asked = "\n".join(proxy.lines())
    assert "Connect (file descriptor" in asked and tinyproxy.HERE in asked, asked[-2000:]
    assert "GET http://host.docker.internal:" in asked, asked[-2000:]
    assert client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={results['run_id']}"}) == []
