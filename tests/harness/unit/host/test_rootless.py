"""A rootless daemon as the harness reads it (host/rootlesskit.py) and what follows from it:
the listeners of a namespace from its /proc, the explanation of a refusal at RootlessKit's
gateway, the remedy through the loopback-backed host alias (and none without one), and
doctor's words."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from harness import remedies
from harness.host import doctor, rootlesskit
from harness.host.docker_host import HostFacts
from harness.host.rootlesskit import RootlessKit
from harness.model import Cause, CellResult, Connect, Direction, Verdict


def kit(loopback: bool | None = True, pid: int | None = None) -> RootlessKit:
    return RootlessKit(version="1.1.0", network_driver="slirp4netns", port_driver="builtin", child_ip="10.0.2.100",
                       host_alias="10.0.2.2", host_loopback=loopback, api_socket="/tmp/rootlesskit1/api.sock",
                       child_pid=pid)


def test_the_listeners_of_a_namespace_are_read_from_its_proc() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert rootlesskit.listeners(os.getpid(), port) == ["127.0.0.1"]
    assert rootlesskit.listeners(os.getpid(), port) == []
    assert rootlesskit.listeners(2**22 + 17, port) is None  # no such process: not readable


def test_a_refusal_at_the_gateway_says_what_listens_instead_and_where_this_machine_is() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        why = rootlesskit.refused_at_gateway(kit(False, os.getpid()), "host.docker.internal", "172.17.0.1", port)
    assert why.startswith("on this rootless daemon host.docker.internal is 172.17.0.1, a bridge gateway inside "
                          "RootlessKit's network namespace, not this machine"), why
    assert f"port {port} there: RootlessKit's docker-proxy listens for it on 127.0.0.1 only" in why
    assert "10.0.2.2" in why and "does not reach its loopback here (--disable-host-loopback)" in why


def failed(api: str, direction: Direction, mode: str = "host-gateway") -> CellResult:
    return CellResult(id=f"x-{mode}", tag="x", mode=mode, api=api,
                      connect=Connect(verdict=Verdict.FAIL, cause=Cause.CONNECTION_REFUSED, direction=direction))


@pytest.mark.parametrize(("api", "direction", "env"), [
    ("v0", Direction.FORWARD, {"DOCKER_HOST_ADDR": "10.0.2.2"}),
    ("v1", Direction.CALLBACK, {"SANDBOX_CONTAINER_URL_PATTERN": "http://10.0.2.2:{port}",
                                "OH_WEB_URL": "http://10.0.2.2:{app_port}"}),
])
def test_the_rootless_remedy_goes_through_the_loopback_backed_alias_both_ways(
        api: str, direction: Direction, env: dict[str, str]) -> None:
    ctx = remedies.Context(gateway="172.17.0.1", mode="host-gateway", rootless=True, host_alias="10.0.2.2")
    found = {r.name: c for r, c in remedies.applicable(failed(api, direction), ctx)}
    change = found["rootless-host-alias"]
    assert env.items() <= change.env.items(), change.env
    assert "172.17.0.1" not in str(change.env)  # RootlessKit's gateway is where it failed


def test_without_a_loopback_backed_alias_no_rootless_remedy_and_no_gateway_remedy_is_tried() -> None:
    ctx = remedies.Context(gateway="172.17.0.1", mode="bridge", rootless=True, host_alias=None)
    result = failed("v0", Direction.FORWARD, "bridge")
    result.connect.cause = Cause.DNS_UNRESOLVED
    names = {r.name for r, _ in remedies.applicable(result, ctx)}
    assert "rootless-host-alias" not in names and "docker-host-addr" not in names, names


def test_on_a_rootful_daemon_the_rootless_remedy_is_never_tried() -> None:
    ctx = remedies.Context(gateway="172.17.0.1", mode="host-gateway")
    names = {r.name for r, _ in remedies.applicable(failed("v0", Direction.FORWARD), ctx)}
    assert "rootless-host-alias" not in names


def test_doctor_names_rootlesskit_and_reads_none_of_this_machines_bridge_rules() -> None:
    facts = HostFacts(server_version="20.10.24", api_version="1.41", os="Debian", kernel="6", rootless=True,
                      cgroup="v1/none", storage_driver="overlay2", bridge_gateway="172.17.0.1",
                      rootlesskit=kit(True).to_dict())
    rootless = doctor._rootless(facts)
    assert rootless.warn and rootless.value.startswith("yes: RootlessKit 1.1.0: network slirp4netns")
    assert "containers reach this machine's published ports at 10.0.2.2" in rootless.meaning
    names = {f.name: f.value for f in doctor._local(facts)}
    assert names["INPUT drops from docker0"] == "not read: rootless daemon"
    assert names["userland-proxy"] == "RootlessKit's docker-proxy"


def test_a_forward_a_crashed_cell_left_is_removed_by_the_next_sweep(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from harness.host import cleanup

    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    removed: list[tuple[str, int]] = []
    monkeypatch.setattr(rootlesskit, "unforward", lambda sock, fid: removed.append((sock, fid)))
    monkeypatch.setattr(cleanup, "_owner_alive", lambda owner: False)  # its worker died
    cleanup.register_forward("run-1", "/tmp/rootlesskit1/api.sock", 7)

    class NoDaemon:  # the sweep's container and network reads find nothing
        class containers:
            list = staticmethod(lambda **k: [])

        class networks:
            list = staticmethod(lambda **k: [])

    cleanup.sweep(NoDaemon())  # type: ignore[arg-type]
    assert removed == [("/tmp/rootlesskit1/api.sock", 7)]
    assert not (cleanup.cache_root() / "runs" / "run-1").exists()


def test_a_cell_that_removed_its_forward_leaves_no_registry(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: object) -> None:
    from harness.host import cleanup

    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    key = cleanup.register_forward("run-2", "/tmp/rootlesskit1/api.sock", 8)
    cleanup.unregister_forward("run-2", key)
    assert not (cleanup.cache_root() / "runs" / "run-2").exists()


def test_a_containers_uid_on_this_machine_is_read_from_the_daemons_uid_map(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDBOX_USER_ID through a rootless daemon's user namespace: 0 is the daemon's user, 1000
    a subordinate uid, and one past the subordinate range none at all."""
    real = Path.read_text
    maps = "         0       1001          1\n         1     100000      65536\n"
    monkeypatch.setattr(Path, "read_text",
                        lambda self, *a, **k: maps if str(self) == "/proc/4242/uid_map" else real(self, *a, **k))
    k = kit(True, 4242)
    assert rootlesskit.uid_map(4242) == [(0, 1001, 1), (1, 100000, 65536)]
    assert "uid 0 in a container is uid 1001 on this machine, the daemon's own user" in (
        rootlesskit.user_id_on_host(k, 0) or "")
    assert "uid 1000 in a container is uid 100999 on this machine, a subordinate uid" in (
        rootlesskit.user_id_on_host(k, 1000) or "")
    assert "uid 70000 in a container has no uid on this machine" in (rootlesskit.user_id_on_host(k, 70000) or "")
    assert rootlesskit.uid_map(2**22 + 17) is None


def test_a_rootless_cell_says_what_its_runtimes_user_is_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.62's runtime runs the agent as uid 1000 (openhands) whatever SANDBOX_USER_ID says; on a
    rootless daemon that is a subordinate uid of this machine: the owner of what it writes."""
    from harness import generations
    from harness.cells import launch
    from harness.host import docker_host

    monkeypatch.setattr(docker_host, "rootless_kit", lambda client: kit(True, 4242))
    monkeypatch.setattr(rootlesskit, "uid_map", lambda pid: [(0, 1001, 1), (1, 100000, 65536)])
    note = launch.user_id_note(object(), generations.V0, {"SANDBOX_USER_ID": "1001"})  # type: ignore[arg-type]
    assert note == ("the runtime's user is uid 1000 in its container (openhands, as RUN_AS_OPENHANDS defaults; "
                    "SANDBOX_USER_ID=1001 does not set it); on this rootless daemon uid 1000 in a container is uid "
                    "100999 on this machine, a subordinate uid of the daemon's user (/etc/subuid), not the daemon's "
                    "user itself: what it writes in a mounted folder is not the daemon user's own there (the daemon's "
                    "uid map: 0-0 -> 1001-1001, 1-65536 -> 100000-165535)")
    root = launch.user_id_note(object(), generations.V0, {"RUN_AS_OPENHANDS": "false"})  # type: ignore[arg-type]
    assert root is not None and "uid 0 in a container is uid 1001 on this machine, the daemon's own user" in root
    far = launch.user_id_note(object(), generations.V0, {"RUNTIME_UID": "70000"})  # type: ignore[arg-type]
    assert far is not None and "(RUNTIME_UID=70000); on this rootless daemon uid 70000 in a container has no uid" in far
    assert launch.user_id_note(object(), generations.V1, {}) is None  # type: ignore[arg-type]
    monkeypatch.setattr(docker_host, "rootless_kit", lambda client: None)  # a rootful daemon: nothing to say
    assert launch.user_id_note(object(), generations.V0, {}) is None  # type: ignore[arg-type]
