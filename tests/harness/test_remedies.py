"""Which remedies a failed cell gets to try (whether they work is for the rerun to show:
see test_release_v0.py, where DOCKER_HOST_ADDR turns bridge green on this host)."""

from harness import remedies
from harness.results import CellResult, Connect


def failed(cause: str, api: str = "v0", mode: str = "bridge") -> CellResult:
    return CellResult(id=f"x-{mode}", tag="x", mode=mode, api=api, connect=Connect("fail", cause=cause))


CTX = remedies.Context(gateway="172.17.0.1")


def names(result: CellResult, ctx: remedies.Context = CTX) -> list[str]:
    return [r.name for r, _ in remedies.applicable(result, ctx)]


def test_each_cause_gets_its_fixes() -> None:
    assert names(failed("dns-unresolved")) == ["docker-host-addr"]
    assert names(failed("dns-unresolved", mode="host")) == ["docker-host-addr", "host-network-trio"]
    assert names(failed("connection-refused")) == ["bind-all-addresses"]
    assert names(failed("proxy", api="v1")) == ["no-proxy"]
    assert names(failed("dns-unresolved", api="v1")) == ["v1-url-pattern"]
    assert names(failed("budget-exceeded", api="v1")) == ["v1-startup-grace"]
    assert names(failed("runtime-exited")) == []


def test_callback_failures_do_not_get_forward_fixes() -> None:
    r = failed("dns-unresolved", api="v1", mode="host")
    r.connect.direction = "sandbox->app"
    assert names(r) == []


def test_env_comes_from_the_host_facts() -> None:
    [(_, env)] = remedies.applicable(failed("dns-unresolved", api="v1"), CTX)
    assert env == {"SANDBOX_CONTAINER_URL_PATTERN": "http://172.17.0.1:{port}"}
    assert names(failed("dns-unresolved"), remedies.Context(gateway=None)) == []


def test_search_records_what_each_rerun_did() -> None:
    seen: list[dict[str, str]] = []

    def rerun(env: dict[str, str]) -> CellResult:
        seen.append(env)
        return CellResult(id="x-bridge", tag="x", mode="bridge", api="v0",
                          connect=Connect("pass", seconds=12.0, runtime_url="http://172.17.0.1:30001"))

    [tried] = remedies.search(failed("dns-unresolved"), CTX, rerun)
    assert seen == [{"DOCKER_HOST_ADDR": "172.17.0.1"}]
    assert (tried["name"], tried["verdict"], tried["cause"]) == ("docker-host-addr", "pass", None)
