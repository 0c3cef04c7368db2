"""Caller cells without Docker: the matrix's `[callers.NAME]` tables, the decision from a
caller's probe, the fixes a cause leads to and their diff, and the program a caller's calls
run (here, by this interpreter, against real sockets)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import matrix
from harness.cells.caller import PROGRAM, CallerTransport, Placed, caller_decision
from harness.errors import InputError
from harness.host.containers import free_port
from harness.host.netprobe import NetProbe
from harness.matrix import Caller
from harness.model import Cause, Direction, Verdict
from harness.remedies import callers as fixes

BASE = '[run]\ntasks = []\n[[targets]]\ntag = "0.62"\n[modes.host-gateway]\n'


def load(text: str, tmp_path: Path) -> matrix.Matrix:
    (tmp_path / "m.toml").write_text(BASE + text)
    return matrix.load(tmp_path / "m.toml")


def test_each_caller_is_one_more_cell_per_target_and_mode(tmp_path: Path) -> None:
    m = load('[callers.n8n]\nurl = "http://localhost:{port}"\n[callers.ci]\nnetwork = "host"\n', tmp_path)
    cells = {c.id: c for c in m.cells()}
    assert list(cells) == ["0.62-host-gateway", "0.62-host-gateway-via-n8n", "0.62-host-gateway-via-ci"]
    n8n = cells["0.62-host-gateway-via-n8n"]
    assert n8n.entrypoint == "caller" and n8n.caller == Caller("n8n")
    assert cells["0.62-host-gateway-via-ci"].caller == Caller("ci", network="host")
    assert n8n.caller is not None and n8n.caller.url_for(port=3000, app="a", app_port=3000) == "http://localhost:3000"


@pytest.mark.parametrize(("table", "error"), [
    ('[callers.n8n]\nurl = "localhost:3000"\n', r"callers\.n8n\.url: expected an http:// URL"),
    ('[callers.n8n]\nurl = "http://{host}:3000"\n', r"callers\.n8n\.url: \{host\}: not something a caller's url"),
    ('[callers.n8n]\nurl = "http://x:{port"\n', r"callers\.n8n\.url: "),
    ('[callers.n8n]\nnetwork = "overlay"\n', r"callers\.n8n\.network: expected one of bridge, host, app"),
    ('[callers.n8n]\nextra_hosts = ["nohost"]\n', r"callers\.n8n\.extra_hosts: expected a list"),
    ('[callers.n8n]\nproxy = "x"\n', r"callers\.n8n\.proxy: unknown key"),
    ('[callers.N8N]\n', r"callers\.N8N: a caller's name is lower case"),
    ('[callers]\nn8n = 1\n', r"callers\.n8n: expected a table"),
    ('[[expect]]\ncaller = "zapier"\nverdict = "fail"\nreason = "x"\n',
     r"expect\[0\]\.caller: 'zapier' is not a caller of this matrix"),
])
def test_a_bad_caller_is_one_line_naming_its_key(tmp_path: Path, table: str, error: str) -> None:
    with pytest.raises(InputError, match=error):
        load(table, tmp_path)


def test_an_expectation_can_name_a_caller(tmp_path: Path) -> None:
    m = load('[callers.n8n]\n[callers.ci]\nnetwork = "host"\n[[expect]]\ncaller = "n8n"\nverdict = "fail"\n'
             'cause = "own-loopback"\nreason = "its own loopback"\n', tmp_path)
    by_id = {c.id: c for c in m.cells()}
    assert m.expected(by_id["0.62-host-gateway-via-n8n"], None).cause == "own-loopback"
    assert m.expected(by_id["0.62-host-gateway-via-ci"], None).verdict == "pass"
    assert m.expected(by_id["0.62-host-gateway"], None).verdict == "pass"


def probe(host: str, **seen: Any) -> NetProbe:
    return NetProbe(where="the caller (bridge network)", host=host, port=3000, **seen)


HERE = NetProbe(where="the harness (this machine)", host="127.0.0.1", port=3000, dns="ok", addresses=["127.0.0.1"],
                tcp="open", tcp_ms=0, http="HTTP/1.1 200 OK")


def placed(url: str, network: str = "bridge") -> Placed:
    return Placed(container=None, network=network, url=url)  # type: ignore[arg-type]


def test_localhost_from_a_container_is_its_own_loopback() -> None:
    seen = probe("localhost", dns="ok", addresses=["127.0.0.1"], tcp="refused", tcp_ms=0)
    d = caller_decision(Caller("n8n"), placed("http://localhost:3000"), seen, None, HERE, ["0.0.0.0:3000"])
    assert d is not None and (d.verdict, d.cause, d.direction) == (Verdict.FAIL, Cause.OWN_LOOPBACK, Direction.CALLER)
    assert "the container's own loopback" in d.why and "published on this machine at 0.0.0.0:3000" in d.why
    assert "localhost:3000 -> 127.0.0.1 TCP refused" in d.why


def test_the_same_url_on_the_host_network_is_the_hosts_and_answers() -> None:
    seen = probe("localhost", dns="ok", addresses=["127.0.0.1"], tcp="open", tcp_ms=0, http="HTTP/1.1 200 OK")
    assert caller_decision(Caller("ci", network="host"), placed("http://localhost:3000", "host"), seen, None, HERE,
                           []) is None


def test_an_unmapped_host_docker_internal_says_how_linux_maps_it() -> None:
    seen = probe("host.docker.internal", dns="fail", error="[Errno -2] Name or service not known", hosts=[])
    d = caller_decision(Caller("n8n"), placed("http://host.docker.internal:3000"), seen, None, HERE, ["0.0.0.0:3000"])
    assert d is not None and d.cause == Cause.DNS_UNRESOLVED
    assert "--add-host host.docker.internal:host-gateway" in d.why and "not in /etc/hosts" in d.why


def test_a_port_published_on_the_loopback_only_is_named() -> None:
    seen = probe("host.docker.internal", dns="ok", addresses=["172.17.0.1"], tcp="refused", tcp_ms=0)
    d = caller_decision(Caller("n8n"), placed("http://host.docker.internal:3000"), seen, None, HERE,
                        ["127.0.0.1:3000"])
    assert d is not None and d.cause == Cause.CONNECTION_REFUSED
    assert "published on this machine's loopback only (127.0.0.1:3000)" in d.why


def test_a_proxy_that_answers_for_the_app_is_the_cause() -> None:
    seen = probe("proxy", dns="ok", addresses=["10.0.0.5"], tcp="open", tcp_ms=1, http="HTTP/1.0 502 Bad Gateway")
    d = caller_decision(Caller("n8n"), placed("http://host.docker.internal:3000"), seen, ("proxy", 3128), HERE, [])
    assert d is not None and d.cause == Cause.PROXY
    assert "its proxy proxy:3128" in d.why and "answered 'HTTP/1.0 502 Bad Gateway'" in d.why


def test_fixes_follow_the_cause_and_where_the_app_is() -> None:
    n8n = Caller("n8n")
    names = [f.name for f in fixes.applicable(n8n, Cause.OWN_LOOPBACK, "bridge")]
    assert names == ["caller-host-gateway", "caller-host-network"]
    on_its_own = fixes.applicable(n8n, Cause.OWN_LOOPBACK, "oh-matrix-x-net")
    assert [f.name for f in on_its_own] == ["caller-host-gateway", "caller-app-network", "caller-host-network"]
    gateway, joined = on_its_own[0].caller, on_its_own[1].caller
    assert gateway.url == "http://host.docker.internal:{port}"
    assert gateway.extra_hosts == ("host.docker.internal:host-gateway",)
    assert (joined.network, joined.url) == ("app", "http://{app}:{app_port}")
    assert fixes.applicable(Caller("ci", network="host"), Cause.OWN_LOOPBACK, "bridge") == []
    [no_proxy] = fixes.applicable(Caller("n8n", url="http://host.docker.internal:{port}",
                                         env={"HTTP_PROXY": "http://proxy:3128"}), Cause.PROXY, "bridge")
    assert no_proxy.caller.env["NO_PROXY"] == "host.docker.internal"
    assert fixes.applicable(n8n, Cause.CONNECT_TIMEOUT, "bridge") == []


def test_a_fix_is_shown_as_the_change_to_the_callers_line() -> None:
    before = fixes.docker_run(Caller("n8n", env={"N8N_API_KEY": "k"}), "http://localhost:3000")
    fixed = fixes.applicable(Caller("n8n", env={"N8N_API_KEY": "k"}), Cause.OWN_LOOPBACK, "bridge")[0].caller
    after = fixes.docker_run(fixed, "http://host.docker.internal:3000")
    assert "N8N_API_KEY=$N8N_API_KEY" in before and "=k " not in before  # a secret by name only
    assert fixes.diff(before, after).splitlines()[2:] == [
        "@@ -1,5 +1,6 @@", " docker run -d", " --network bridge", "+--add-host host.docker.internal:host-gateway",
        " -e 'N8N_API_KEY=$N8N_API_KEY'", "--e OPENHANDS_URL=http://localhost:3000",
        "+-e OPENHANDS_URL=http://host.docker.internal:3000", " CALLER_IMAGE"]


class _Here:
    """A stand-in for the caller's container: the program run by this interpreter."""

    def exec_run(self, cmd: list[str]) -> tuple[int, bytes]:
        assert cmd[:3] == ["python", "-c", PROGRAM]
        out = subprocess.run([sys.executable, "-c", PROGRAM, *cmd[3:]], capture_output=True, timeout=30)
        return out.returncode, out.stdout


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = json.dumps({"got": json.loads(body), "key": self.headers.get("X-Session-API-Key")}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_a_call_goes_out_and_comes_back_through_the_callers_program(server: str) -> None:
    with httpx.Client(base_url=server, transport=CallerTransport(_Here()),  # type: ignore[arg-type]
                      headers={"X-Session-API-Key": "k1"}) as http_:
        r = http_.post("/api/conversations", json={"initial_message": "hi"})
    assert r.status_code == 201 and r.json() == {"got": {"initial_message": "hi"}, "key": "k1"}


def test_a_refused_call_is_httpx_s_connect_error_with_the_callers_words() -> None:
    port = free_port()
    with (httpx.Client(transport=CallerTransport(_Here())) as http_,  # type: ignore[arg-type]
          pytest.raises(httpx.ConnectError, match="from the caller's container: ConnectionRefusedError")):
        http_.get(f"http://127.0.0.1:{port}/health")


def test_every_fix_has_a_name_that_remedy_accepts() -> None:
    causes = [Cause.OWN_LOOPBACK, Cause.PROXY]
    made = {f.name for c in causes for f in fixes.applicable(Caller("n8n", env={"HTTP_PROXY": "http://p:1"}), c, "net")}
    made.add(fixes.daemon_open_files(Caller("ci", drives="docker-workspace"), 20000).name)  # a workspace caller's
    assert made == set(fixes.NAMES)
