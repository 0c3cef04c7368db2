"""Which remedies a failed cell gets to try (whether they work is for the rerun to show:
see test_release_v0.py, where DOCKER_HOST_ADDR turns bridge green on this host)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import remedies
from harness.host import hostchange
from harness.model import CellResult, Connect, Direction, Evidence, RemedyTry


def failed(cause: str, api: str = "v0", mode: str = "bridge") -> CellResult:
    return CellResult(id=f"x-{mode}", tag="x", mode=mode, api=api,
                      connect=Connect(verdict="fail", cause=cause))  # type: ignore[arg-type]


def test_every_generation_names_remedies_that_exist() -> None:
    assert remedies.unknown_names() == []


CTX = remedies.Context(gateway="172.17.0.1")


def names(result: CellResult, ctx: remedies.Context = CTX) -> list[str]:
    return [r.name for r, _ in remedies.applicable(result, ctx)]


def test_each_cause_gets_its_fixes() -> None:
    assert names(failed("dns-unresolved")) == ["docker-host-addr", "host-network-trio"]
    assert names(failed("connect-timeout")) == ["docker-host-addr", "host-network-trio", "own-network"]
    assert names(failed("connection-refused")) == ["host-network-trio", "bind-all-addresses"]
    assert names(failed("proxy", api="v1")) == ["no-proxy"]
    assert names(failed("dns-unresolved", api="v1")) == ["v1-url-pattern"]
    assert names(failed("startup-grace", api="v1")) == ["v1-startup-grace"]
    assert names(failed("budget-exceeded", api="v1")) == []
    assert names(failed("runtime-exited")) == []


def test_a_proxied_sandbox_gets_its_no_proxy_through_the_apps_setting_beside_what_it_had() -> None:
    import json

    r = failed("proxy", api="v1", mode="host-gateway")
    r.connect.direction = Direction.CALLBACK
    ctx = remedies.Context(gateway="172.17.0.1", mode="host-gateway",
                           sandbox_env='{"HTTP_PROXY": "http://10.219.0.2:61888", "NO_PROXY": "intranet"}')
    [(remedy, change)] = remedies.applicable(r, ctx)
    assert remedy.name == "sandbox-no-proxy"
    given = json.loads(change.env["OH_AGENT_SERVER_ENV"])
    assert given["HTTP_PROXY"] == "http://10.219.0.2:61888"  # what the sandbox had stays
    assert given["NO_PROXY"] == given["no_proxy"] == "intranet,host.docker.internal,localhost,127.0.0.1,172.17.0.1"
    # the app's own proxy on the forward path: the app's NO_PROXY, beside the one it had
    r = failed("proxy", api="v1", mode="host-gateway")
    r.connect.direction = Direction.FORWARD
    [(remedy, change)] = remedies.applicable(r, remedies.Context(gateway="172.17.0.1", no_proxy="corp.example"))
    assert remedy.name == "no-proxy"
    assert change.env["NO_PROXY"] == "corp.example,host.docker.internal,localhost,127.0.0.1,172.17.0.1"
    # V0 and Agent Canvas have no setting for a sandbox's environment
    r = failed("proxy", api="v0")
    r.connect.direction = Direction.CALLBACK
    assert names(r, ctx) == []


def test_callback_failures_get_the_callback_fixes_not_the_forward_ones() -> None:
    r = failed("dns-unresolved", api="v1", mode="host")
    r.connect.direction = Direction.CALLBACK
    host = remedies.Context(gateway="172.17.0.1", mode="host")
    assert names(r, host) == ["v1-web-url", "v1-extra-webhook", "v1-callback-urls", "v1-hosts-entry"]
    by_name = {rem.name: c.env for rem, c in remedies.applicable(r, host)}
    assert by_name["v1-web-url"] == {"OH_WEB_URL": "http://127.0.0.1:{app_port}"}  # on the host network: loopback
    assert by_name["v1-hosts-entry"] == {}  # a host change, no settings
    bridge = failed("connection-refused", api="v1", mode="host-gateway")
    bridge.connect.direction = Direction.CALLBACK
    env2 = {rem.name: c.env for rem, c in remedies.applicable(bridge, remedies.Context(gateway="172.17.0.1",
                                                                                   mode="host-gateway"))}
    assert env2["v1-web-url"] == {"OH_WEB_URL": "http://172.17.0.1:{app_port}"}  # elsewhere: the gateway
    assert "v1-hosts-entry" not in env2  # only a host-network sandbox copies the host's /etc/hosts


def test_env_comes_from_the_host_facts() -> None:
    [(_, change)] = remedies.applicable(failed("dns-unresolved", api="v1"), CTX)
    assert change.env == {"SANDBOX_CONTAINER_URL_PATTERN": "http://172.17.0.1:{port}"}
    assert names(failed("dns-unresolved"), remedies.Context(gateway=None)) == ["host-network-trio"]


def test_search_records_what_each_rerun_did() -> None:
    seen: list[dict[str, str]] = []

    def rerun(change: remedies.Change, alone: bool = False) -> CellResult:
        seen.append(change.env)
        ok = "DOCKER_HOST_ADDR" in change.env and change.mode is None
        return CellResult(id="x-bridge", tag="x", mode="bridge", api="v0",
                          connect=Connect(verdict="pass", seconds=12.0, runtime_url="http://172.17.0.1:30001")
                          if ok else Connect(verdict="fail", cause="runtime-exited", evidence=[  # type: ignore[arg-type]
                              Evidence(source="harness", text="runtime container exited with exit code 3")]))  # type: ignore[arg-type]

    tried = remedies.search(failed("dns-unresolved"), CTX, rerun)
    assert seen == [{"DOCKER_HOST_ADDR": "172.17.0.1"},
                    {"SANDBOX_USE_HOST_NETWORK": "true", "DOCKER_HOST_ADDR": "127.0.0.1"}]
    assert [(t.name, t.verdict, t.cause) for t in tried] == [
        ("docker-host-addr", "pass", None), ("host-network-trio", "fail", "runtime-exited")]
    # a rerun that did not pass keeps its own reason, as a cell does; a pass needs none
    assert [t.evidence for t in tried] == [None, "runtime container exited with exit code 3"]


def test_a_remedy_that_needs_another_mode_reruns_in_it_and_records_its_command() -> None:
    modes: list[str | None] = []

    def rerun(change: remedies.Change, alone: bool = False) -> CellResult:
        modes.append(change.mode)
        return CellResult(id="x", tag="x", mode=change.mode or "host", api="v0",
                          connect=Connect(verdict="pass", seconds=9.0),  # type: ignore[arg-type]
                          docker_run=f"docker run --network {change.mode or 'host'} img")

    tried = remedies.search(failed("connect-timeout", mode="host-gateway"), CTX, rerun)
    assert modes == [None, "host", "custom-network"]
    assert [(t.name, t.mode) for t in tried] == [
        ("docker-host-addr", None), ("host-network-trio", "host"), ("own-network", "custom-network")]
    assert tried[1].docker_run == "docker run --network host img"
    # Already in host mode: the trio is an env change of the cell itself.
    modes.clear()
    remedies.search(failed("dns-unresolved", mode="host"), CTX, rerun)
    assert modes == [None, None]


def test_a_deployment_is_fixed_in_itself_never_moved_to_a_built_in_mode() -> None:
    dep = remedies.Context(gateway="172.17.0.1", mode="old-readme", deployment=True, network="default")
    found = {r.name: c for r, c in remedies.applicable(failed("dns-unresolved", mode="old-readme"), dep)}
    assert list(found) == ["add-host-gateway", "docker-host-addr", "host-network-trio"]
    assert found["add-host-gateway"].extra_hosts == {"host.docker.internal": "host-gateway"}
    trio = found["host-network-trio"]  # the deployment's own network becomes the host's: no move
    assert (trio.mode, trio.network_mode) == (None, "host")
    # what it maps already, or a host network, or a command of its own that fixes the port: not offered
    mapped = remedies.Context(gateway="172.17.0.1", mode="x", deployment=True, network="default",
                              extra_hosts=("host.docker.internal",), own_command=True)
    assert names(failed("dns-unresolved", mode="x"), mapped) == ["docker-host-addr"]
    on_host = remedies.Context(gateway="172.17.0.1", mode="x", deployment=True, network="host")
    found = {r.name: c for r, c in remedies.applicable(failed("dns-unresolved", mode="x"), on_host)}
    trio = found["host-network-trio"]  # on the host network already: the trio's env alone
    assert (trio.mode, trio.network_mode, trio.env["SANDBOX_USE_HOST_NETWORK"]) == (None, None, "true")
    loop = remedies.Context(gateway="172.17.0.1", mode="x", deployment=True, network="own", api_on_loopback=True)
    refused = failed("connection-refused", api="v1", mode="x")
    refused.connect.direction = Direction.CALLBACK
    found = {r.name: c for r, c in remedies.applicable(refused, loop)}
    assert found["publish-on-gateway"].also_publish == "172.17.0.1"
    # the URL changes point the sandbox at the gateway, where a loopback-only port does not answer
    assert list(found) == ["publish-on-gateway"], list(found)
    assert "v1-callback-urls" in names(refused, remedies.Context(gateway="172.17.0.1", mode="x", deployment=True))
    assert "publish-on-gateway" not in names(refused, remedies.Context(gateway="172.17.0.1", mode="x", deployment=True))
    timeout = names(failed("connect-timeout", mode="x"), dep)
    assert "own-network" not in timeout and "add-host-gateway" not in timeout
    tried = RemedyTry(name="r", verdict="pass", extra_hosts={"host.docker.internal": "host-gateway"},  # type: ignore[arg-type]
                      network_mode="host", env={"A": "1"})
    assert tried.settings() == "network_mode host extra host host.docker.internal:host-gateway A=1"


def test_a_move_to_the_mode_the_cell_is_already_in_is_not_a_remedy() -> None:
    assert names(failed("connect-timeout", mode="custom-network")) == ["docker-host-addr", "host-network-trio"]
    assert RemedyTry(name="r", mode="host", env={"A": "1"}, verdict="pass").settings() == "in mode host A=1"  # type: ignore[arg-type]
    assert RemedyTry(name="r", env={"A": "1"}, verdict="pass").settings() == "A=1"  # type: ignore[arg-type]


def test_a_host_change_is_made_for_the_rerun_only_and_the_rerun_has_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
    before = hosts.read_bytes()
    monkeypatch.setattr(hostchange, "HOSTS", hosts)
    seen: list[tuple[str, bool]] = []

    def rerun(change: remedies.Change, alone: bool) -> CellResult:
        seen.append((hosts.read_text(), alone))
        return CellResult(id="x", tag="x", mode="host", api="v1",
                          connect=Connect(verdict="pass", seconds=9.0))  # type: ignore[arg-type]

    held: list[str] = []

    @contextlib.contextmanager
    def machine() -> Iterator[None]:  # every boot slot, held around the change: no other cell boots meanwhile
        held.append(f"held with {hosts.read_text().count('host.docker.internal')} hosts lines")
        yield
        held.append(f"released with {hosts.read_text().count('host.docker.internal')} hosts lines")

    r = failed("dns-unresolved", api="v1", mode="host")
    r.connect.direction = Direction.CALLBACK
    tried = {t.name: t for t in remedies.search(r, remedies.Context(gateway="172.17.0.1", mode="host"), rerun,
                                                machine)}
    assert held == ["held with 0 hosts lines", "released with 0 hosts lines"]  # the change inside, only for it
    during, alone = seen[-1]
    assert "127.0.0.1 host.docker.internal" in during and alone
    assert hosts.read_bytes() == before  # undone, byte for byte
    t = tried["v1-hosts-entry"]
    assert t.asks == 2 and t.host_change and "removed after it" in t.host_change
    assert tried["v1-web-url"].asks == 0 and not seen[0][1]


def test_a_release_before_1_2_gets_only_the_fixes_it_can_take() -> None:
    """1.0/1.1 read no URL pattern (any OH_SANDBOX_* setting makes the app exit), so no
    forward fix by a setting; 1.0.0 reads no OH_AGENT_SERVER_ENV (first in 1.1.0), so no
    second webhook either: OH_WEB_URL is the one setting left there."""
    def on(version: str, direction: Direction | None = None) -> CellResult:
        r = failed("dns-unresolved", api="v1", mode="host-gateway")
        r.resolved_version, r.connect.direction = version, direction
        return r

    ctx = remedies.Context(gateway="172.17.0.1", mode="host-gateway")
    assert names(on("1.0.0"), ctx) == [] and names(on("1.2.0"), ctx) == ["v1-url-pattern"]
    assert names(on("1.0.0", Direction.CALLBACK), ctx) == ["v1-web-url"]
    assert names(on("1.1.0", Direction.CALLBACK), ctx) == ["v1-web-url", "v1-extra-webhook", "v1-callback-urls"]


def test_a_firewall_that_drops_or_rejects_gets_the_scoped_accept_only_with_its_rule_read() -> None:
    """firewall-accept is offered for a timeout as for a rejection, once the rule that stopped
    the connects was read on this machine; without it nothing says the firewall did it."""
    from harness.host.firewall import Rule

    drop = Rule(text="-A INPUT -i docker0 -p tcp --dport 32768:60999 -j DROP", source="iptables", chain="INPUT",
                action="drop", iface="docker0", ports=((32768, 60999),), protocol="tcp")
    read = remedies.Context(gateway="172.17.0.1", mode="host-gateway", firewall=(drop,), ports="32768:60999")
    for cause in ("connect-timeout", "connection-rejected"):
        assert "firewall-accept" in names(failed(cause, api="v1", mode="host-gateway"), read)
        assert "firewall-accept" not in names(failed(cause, api="v1", mode="host-gateway"),
                                              remedies.Context(gateway="172.17.0.1", mode="host-gateway"))


def test_the_hosts_line_is_not_offered_where_the_daemon_never_reads_this_machines_etc() -> None:
    r = failed("dns-unresolved", api="v1", mode="host")
    r.connect.direction = Direction.CALLBACK
    rootless = remedies.Context(gateway="172.17.0.1", mode="host", rootless=True, host_alias="10.0.2.2")
    assert "v1-hosts-entry" not in names(r, rootless)
    assert "v1-hosts-entry" in names(r, remedies.Context(gateway="172.17.0.1", mode="host"))


def test_a_sandbox_left_on_the_bridge_by_a_host_network_app_is_sent_to_the_gateway() -> None:
    """Before 1.3.0 the sandbox cannot join the host network: with the app there, 127.0.0.1 is
    the sandbox's own loopback (measured on 1.1-host: refused), and no hosts line reaches it."""
    r = failed("dns-unresolved", api="v1", mode="host")
    r.resolved_version, r.connect.direction = "1.1.0", Direction.CALLBACK
    fixes = {rem.name: c.env for rem, c in remedies.applicable(r, remedies.Context(gateway="172.17.0.1", mode="host"))}
    assert fixes["v1-web-url"] == {"OH_WEB_URL": "http://172.17.0.1:{app_port}"} and "v1-hosts-entry" not in fixes


def test_the_context_is_built_from_the_cell_its_result_and_the_runs_host(tmp_path: Path) -> None:
    """Context.of, the one place the remedies' facts are read: the host's gateway and daemon,
    the result's generation, release and runtime time, and what a deployment writes."""
    from harness import matrix
    from harness.context import RunContext
    from harness.model import Boot, Host, RootlessKitInfo

    (tmp_path / "m.toml").write_text(
        '[run]\ntasks = []\n[[targets]]\ntag = "0.62"\n[modes.host]\n[deployments.mine]\n'
        'docker_run = "docker run --network host -v /var/run/docker.sock:/var/run/docker.sock '
        '--add-host host.docker.internal:host-gateway img"\nown_image = false\n')
    m = matrix.load(str(tmp_path / "m.toml"))
    host = Host(bridge_gateway="172.17.0.1", rootless=True, remote=False,
                rootlesskit=RootlessKitInfo(host_alias="10.0.2.2", host_loopback=True))
    run = RunContext(run_id="r", out=str(tmp_path), matrix_path="m.toml", matrix_text="", backend="pypi",
                     app_env={}, started_at="now", host=host)
    by_mode = {c.mode.name: c for c in m.cells()}
    r = failed("dns-unresolved", api="v1", mode="host")
    r.resolved_version, r.boot = "1.1.0", Boot(runtime_seconds=12.5)
    built = remedies.Context.of(r, by_mode["host"], run)
    assert (built.gateway, built.mode, built.api, built.version, built.runtime_seconds) == (
        "172.17.0.1", "host", "v1", "1.1.0", 12.5)
    assert (built.rootless, built.host_alias, built.published_at, built.remote) == (True, "10.0.2.2", "10.0.2.2", False)
    assert built.on_host_network and not built.deployment and built.gen.at("1.1.0") == built.gen
    mine = remedies.Context.of(failed("dns-unresolved", mode="mine"), by_mode["mine"], run)
    assert (mine.deployment, mine.network, mine.on_host_network, mine.mounts_socket) == (True, "host", True, True)
    assert mine.extra_hosts == ("host.docker.internal",) and not mine.own_command


@pytest.mark.parametrize(("api", "direction", "ports"), [
    ("v0", Direction.FORWARD, "30000:39999"),  # V0's runtime ports; it never calls back
    ("v1", Direction.FORWARD, "32768:65499"),  # the sandbox's ports and, for its calls back, the app's
    ("v1", Direction.CALLBACK, "61000:65499"),  # the app's, where the harness publishes it
])
def test_the_accept_rule_opens_every_port_the_rerun_needs(monkeypatch: pytest.MonkeyPatch, api: str,
                                                          direction: Direction, ports: str) -> None:
    """Measured on a plain `-j REJECT` of every NEW connection from docker0: 1.11's rerun with the
    sandbox's ports accepted met the same reject on its call back to the app, so an accept for
    a generation that calls back covers the app's host ports too."""
    from types import SimpleNamespace

    from harness import modes
    from harness.host import firewall
    from harness.model import Host
    from harness.remedies import context

    monkeypatch.setattr(firewall, "rules", lambda: [])
    monkeypatch.setattr(firewall, "ephemeral_ports", lambda: "32768:60999")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    r = failed("connection-rejected", api=api, mode="host-gateway")
    r.connect.direction = direction
    cell = SimpleNamespace(mode=SimpleNamespace(spec=modes.get("host-gateway")))
    facts = context._firewall_facts(r, cell, Host())  # type: ignore[arg-type]
    assert (facts["bridge"], facts["ports"]) == ("docker0", ports)


def test_a_daemon_without_the_userland_proxy_moves_the_app_onto_the_runtimes_bridge() -> None:
    """--userland-proxy=false: a custom-network cell's connects cross from its bridge to the
    runtime's and the daemon's isolation drops them; the app on the default bridge is the fix,
    and a move onto a network of its own is no longer one."""
    off = remedies.Context(gateway="172.17.0.1", mode="custom-network", userland_proxy="off")
    for api in ("v0", "v1"):
        assert "sandbox-network" in names(failed("connect-timeout", api=api, mode="custom-network"), off)
    [(_, change)] = [(r, c) for r, c in remedies.applicable(failed("connect-timeout", mode="custom-network"), off)
                     if r.name == "sandbox-network"]
    assert change.mode == "host-gateway"
    back = failed("connect-timeout", api="v1", mode="custom-network")
    back.connect.direction = Direction.CALLBACK  # the sandbox's call back to the app crosses them too
    assert "sandbox-network" in names(back, off)
    on = remedies.Context(gateway="172.17.0.1", mode="custom-network", userland_proxy="on")
    assert "sandbox-network" not in names(failed("connect-timeout", mode="custom-network"), on)
    unread = remedies.Context(gateway="172.17.0.1", mode="custom-network")
    assert "sandbox-network" not in names(failed("connect-timeout", mode="custom-network"), unread)
    bridge_off = remedies.Context(gateway="172.17.0.1", mode="bridge", userland_proxy="off")
    assert "own-network" not in names(failed("connect-timeout", mode="bridge"), bridge_off)
    assert "own-network" in names(failed("connect-timeout", mode="bridge"), remedies.Context(gateway="172.17.0.1"))


def test_an_agent_server_that_runs_conversations_in_containers_moves_to_the_host_with_its_folders(
        tmp_path: Path) -> None:
    home, work = tmp_path / "nobody" / "home", tmp_path / "projects"
    for cause, mode in (("own-loopback", "bridge"), ("own-paths", "host")):
        r = failed(cause, api="canvas", mode=mode)
        r.connect.direction = Direction.FORWARD
        ctx = remedies.Context(gateway="172.17.0.1", mode=mode, runtime_folders=(str(home), str(work)))
        [(remedy, change)] = remedies.applicable(r, ctx)
        assert remedy.name == "outer-on-host" and remedy.asks == 1
        assert change.volumes == (f"{home}:{home}", f"{work}:{work}")
        assert change.mode == ("host" if mode == "bridge" else None)
    # an app with no such runtime, or folders someone already has here: not this remedy
    assert names(failed("own-loopback", api="canvas"), remedies.Context(gateway="172.17.0.1")) == []
    work.mkdir()
    r = failed("own-paths", api="canvas", mode="host")
    r.connect.direction = Direction.FORWARD
    assert names(r, remedies.Context(gateway="172.17.0.1", runtime_folders=(str(home), str(work)))) == []


def test_folders_made_for_a_rerun_are_open_to_its_user_and_gone_after_it_with_their_parents(tmp_path: Path) -> None:
    mine = tmp_path / "kept"
    mine.mkdir()
    wanted = (str(tmp_path / "home" / "openhands" / ".openhands"), str(mine / "projects"))
    with hostchange.folders(wanted) as said:
        assert all(Path(p).is_dir() and Path(p).stat().st_mode & 0o777 == 0o777 for p in wanted)
        assert (tmp_path / "home").stat().st_mode & 0o777 == 0o777
        assert "removed after it" in said
    assert not (tmp_path / "home").exists() and not (mine / "projects").exists() and mine.is_dir()
