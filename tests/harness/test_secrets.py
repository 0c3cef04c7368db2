import pytest

from harness import secrets
from harness.model import CellResult, Connect, Evidence, RemedyTry, TaskResult

pytestmark = pytest.mark.unit


def test_names_values_and_masking() -> None:
    env = {"LLM_API_KEY": "sk-live-123456", "GITHUB_TOKEN": "ghp_x", "DB_PASSWORD": "hunter22",
           "X_SECRET": "abc", "DOCKER_HOST_ADDR": "172.17.0.1"}
    assert secrets.secret_names(env) == {"LLM_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "X_SECRET"}
    assert secrets.redact_env(env)["DOCKER_HOST_ADDR"] == "172.17.0.1"
    assert secrets.redact_env(env)["LLM_API_KEY"] == "<redacted>"
    # 3-character values are not scrubbed from free text (they would mask unrelated words)
    assert secrets.secret_values(env) == ["sk-live-123456", "hunter22", "ghp_x"]


def test_result_is_scrubbed_everywhere() -> None:
    env = {"LLM_API_KEY": "sk-live-123456"}
    r = CellResult(id="x-host", tag="x", mode="host", api="v0", app_env=dict(env),
                   docker_run="docker run -e LLM_API_KEY=sk-live-123456 app",
                   connect=Connect(verdict="fail", cause="api-error",  # type: ignore[arg-type]
                                   evidence=[Evidence(source="app-log",  # type: ignore[arg-type]
                                                      text="auth failed for key sk-live-123456")]),
                   remedies=[RemedyTry(name="no-proxy", env={"LLM_API_KEY": "sk-live-123456"},
                                       verdict="pass", docker_run="docker run -e K=sk-live-123456"),  # type: ignore[arg-type]
                             RemedyTry(name="host-alias", verdict="fail", cause="api-error",  # type: ignore[arg-type]
                                       evidence="the app says: bad key sk-live-123456")],
                   tasks=[TaskResult(name="t", verdict="fail", detail="echoed sk-live-123456",  # type: ignore[arg-type]
                                     actions=["run: echo sk-live-123456"], evidence=["out sk-live-123456"])],
                   notes=["key sk-live-123456"])
    secrets.redact_result(r, env)
    text = r.model_dump_json()
    assert "sk-live-123456" not in text
    assert r.connect.evidence[0].text == "auth failed for key <redacted>"
