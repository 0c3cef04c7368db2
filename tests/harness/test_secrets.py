from harness import secrets
from harness.results import CellResult, Connect, Evidence


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
                   connect=Connect("fail", cause="api-error",
                                   evidence=[Evidence("app-log", "auth failed for key sk-live-123456")]),
                   remedies=[{"name": "no-proxy", "env": {"LLM_API_KEY": "sk-live-123456"}}])
    secrets.redact_result(r, env)
    text = repr(r.to_dict())
    assert "sk-live-123456" not in text
    assert r.connect.evidence[0].text == "auth failed for key <redacted>"
