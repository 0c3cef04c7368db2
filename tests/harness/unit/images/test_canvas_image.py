"""The Agent Canvas recipe's parts that need no Docker and no registry: what a release's
config/defaults.json pins, the defaults.env the image carries, the resolve's cut-off, npm's
word for a missing dependency, and the image's shape against the official one."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from harness.errors import ImageUnavailable
from harness.images import canvas

# config/defaults.json of @openhands/agent-canvas 1.16.0, the keys the recipe reads
DEFAULTS_1_16 = {
    "versions": {"agentServer": "1.44.0", "agentCanvas": "1.16.0", "automation": "1.9.0"},
    "compatibility": {"minimumAgentServer": "1.28.0"},
    "constraints": {"_comment": "acp 0.11 breaks the SDK's ACP client",
                    "agentClientProtocol": "agent-client-protocol<0.11"},
    "ports": {"agentServer": 18000, "automation": 18001, "proxy": 8000, "_vscodeComment": "...", "vscode": 8001},
    "paths": {"stateSubdir": "agent-canvas", "conversations": "agent-canvas/conversations",
              "bashEvents": "agent-canvas/bash_events", "automationDb": "automation/automations.db",
              "canvasBasePath": "/canvas", "_vscodeBasePathComment": "...", "vscodeBasePath": "/vscode"},
    "telemetry": {"posthogApiKey": "phc_x", "posthogHost": "https://us.i.posthog.com"},
}


def test_pins_read_the_release_stack() -> None:
    p = canvas.pins(DEFAULTS_1_16, "1.16.0")
    assert (p.agent_server, p.automation) == ("1.44.0", "1.9.0")
    assert p.constraints == ("agent-client-protocol<0.11",)  # comments are not constraints
    assert p.ports == {"agentServer": 18000, "automation": 18001, "proxy": 8000, "vscode": 8001}
    assert p.requirements() == ["openhands-agent-server==1.44.0", "openhands-tools==1.44.0",
                                "openhands-automation==1.9.0"]
    assert p.all_constraints() == ["agent-client-protocol<0.11", *canvas.HARNESS_CONSTRAINTS]


def test_pins_without_a_version_is_one_line() -> None:
    with pytest.raises(ImageUnavailable, match="pins no automation"):
        canvas.pins({"versions": {"agentServer": "1.44.0"}}, "9.9.9")


def test_defaults_env_is_what_the_config_gen_stage_writes() -> None:
    env = canvas.defaults_env(DEFAULTS_1_16).splitlines()
    assert env[:4] == ["CONFIG_AGENT_SERVER_PORT=18000", "CONFIG_AUTOMATION_PORT=18001", "CONFIG_PROXY_PORT=8000",
                       "CONFIG_VSCODE_PORT=8001"]
    assert "CONFIG_CANVAS_BASE_PATH=/canvas" in env and "CONFIG_AUTOMATION_DB=automation/automations.db" in env
    # an older release without the editor keys: the lines are left out, not "None"
    old = {**DEFAULTS_1_16, "ports": {"agentServer": 18000, "automation": 18001, "proxy": 8000}}
    assert "VSCODE_PORT" not in canvas.defaults_env(old) and "None" not in canvas.defaults_env(old)


def test_exclude_newer_is_the_later_upload_plus_the_margin() -> None:
    agent = datetime(2026, 8, 27, 13, 38, 1, 955219, tzinfo=UTC)  # openhands-agent-server 1.44.0
    automation = datetime(2026, 8, 27, 14, 5, 16, 122672, tzinfo=UTC)  # openhands-automation 1.9.0
    assert canvas.exclude_newer([agent, automation]) == "2026-08-28T14:05:16Z"


@pytest.mark.parametrize(("output", "found"), [
    ("npm error code ETARGET\nnpm error notarget No matching version found for @openhands/extensions@0.22.1.\n"
     "npm error notarget In most cases you or one of your dependencies are requesting\n",
     ("@openhands/extensions", "0.22.1")),
    ("npm error code E404\nnpm error 404  'left-pad@9.9.9' is not in this registry.\n", ("left-pad", "9.9.9")),
    ("npm error code ECONNRESET\nnpm error network aborted\n", None),
])
def test_missing_package_from_npm_output(output: str, found: tuple[str, str] | None) -> None:
    assert canvas.missing_package(output) == found


def test_a_missing_dependency_remembered_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "cache" / "agent-canvas" / "npm" / "1.20.0" / "package"
    package.mkdir(parents=True)
    line = "agent-canvas 1.20.0 does not install from this machine's npm registry: @openhands/extensions@0.22.1 ..."
    (package.parent / "missing.json").write_text(json.dumps(["@openhands/extensions", "0.22.1", line]))
    asked: list[str] = []
    monkeypatch.setattr(canvas, "_versions", lambda spec, cwd: asked.append(spec) or [])
    monkeypatch.setattr(canvas, "_npm", lambda *a, **k: pytest.fail("npm install must not run"))
    with pytest.raises(ImageUnavailable) as e:
        canvas.npm_install("1.20.0", package)
    assert str(e.value) == line and asked == ["@openhands/extensions@0.22.1"]


def test_the_image_has_the_official_shape() -> None:
    p = canvas.pins(DEFAULTS_1_16, "1.16.0")
    text = canvas.dockerfile("oh-matrix/canvas-venv:1.44.0-abc", p, {"oh-matrix.release": "1.16.0"})
    lines = text.splitlines()
    assert lines[0] == "FROM oh-matrix/canvas-venv:1.44.0-abc"
    assert lines[-1] == 'ENTRYPOINT ["tini", "--", "/opt/agent-canvas/entrypoint.sh"]'
    assert "USER openhands" in lines and "WORKDIR /" in lines and "EXPOSE 8000" in lines
    assert 'VOLUME ["/home/openhands/.openhands", "/projects"]' in lines
    assert "useradd -m -u 10001 -g 10001" in text and "NOPASSWD:ALL" in text
    assert "AGENT_CANVAS_BASE_PATH=/canvas" in text and "DO_NOT_TRACK=1" in text


def test_the_entrypoint_routes_as_the_official_one() -> None:
    script = (Path(canvas.__file__).parent / "assets" / "canvas-entrypoint.sh").read_text()
    for prefix in ("/api/automation", "/api", "/server_info", "/sockets", "/alive", "/health", "/ready", "/docs",
                   "/redoc", "/openapi.json"):
        assert f'--route "{prefix}=' in script
    for setting in ("LOCAL_BACKEND_API_KEY", "OH_SECRET_KEY", "OH_SESSION_API_KEYS_0", "PORT", "AGENT_SERVER_PORT",
                    "AUTOMATION_PORT"):
        assert setting in script


def test_upload_time_is_the_releases_first_file(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [
        {"filename": "openhands_agent_server-1.44.0-py3-none-any.whl", "upload-time": "2026-08-27T13:38:01.955219Z"},
        {"filename": "openhands_agent_server-1.44.0.tar.gz", "upload-time": "2026-08-27T13:37:59.000000Z"},
        {"filename": "openhands_agent_server-1.44.1-py3-none-any.whl", "upload-time": "2026-08-30T00:00:00Z"},
    ]
    asked: list[str] = []

    def get(url: str, **kw: object) -> httpx.Response:
        asked.append(url)
        return httpx.Response(200, json={"files": files}, request=httpx.Request("GET", url))

    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.example/simple/")
    monkeypatch.setattr(canvas.httpx, "get", get)
    assert canvas.upload_time("openhands-agent-server", "1.44.0") == datetime(2026, 8, 27, 13, 37, 59, tzinfo=UTC)
    assert asked == ["https://index.example/simple/openhands-agent-server/"]
    with pytest.raises(ImageUnavailable, match="no upload time"):
        canvas.upload_time("openhands-agent-server", "9.9.9")


def test_the_releases_own_pins_are_looked_up_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"@openhands/extensions": ["0.17.0", "0.19.0"], "sirv": ["3.0.2"]}
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        name = request.url.path.lstrip("/").replace("%2F", "/")
        asked.append(name)
        assert request.headers["accept"] == "application/vnd.npm.install-v1+json"
        if name not in registry:
            return httpx.Response(404, json={"error": "Not found"})
        return httpx.Response(200, json={"versions": {v: {} for v in registry[name]}})

    monkeypatch.setattr(canvas, "_npm", lambda *a, **k: subprocess.CompletedProcess(a, 0, "https://r.example/\n", ""))
    look = lambda deps: canvas.direct_missing(deps, tmp_path, httpx.MockTransport(answer))  # noqa: E731
    assert look({"@openhands/extensions": "0.22.1", "sirv": "3.0.2"}) == ("@openhands/extensions", "0.22.1")
    assert look({"@openhands/extensions": "0.19.0", "sirv": "3.0.2", "left-pad": "^1.0.0"}) is None  # ranges: npm's
    assert look({"gone": "1.0.0"}) == ("gone", "1.0.0")
    assert "left-pad" not in asked
