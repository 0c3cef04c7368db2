import pytest

from harness import secrets
from harness.model import CellResult, Connect, Evidence, RemedyTry, TaskResult


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


def test_a_secret_shows_as_a_mask_wherever_it_is_held() -> None:
    from harness.matrix import Cell, ModeChoice, Target

    s = secrets.Secret("ghp_canary_value", "GITHUB_TOKEN", ".env")
    assert repr(s) == "<secret GITHUB_TOKEN>" and str(s) == f"{s}" == "%s" % s == "<redacted>"  # noqa: UP031 (logging formats so)
    assert repr({"GITHUB_TOKEN": s}) == "{'GITHUB_TOKEN': <secret GITHUB_TOKEN>}"
    assert secrets.reveal(s) == "ghp_canary_value" and type(secrets.reveal(s)) is str
    assert secrets.scrub("the app said ghp_canary_value") == "the app said <redacted>"
    assert secrets.scrub('{"k": "ghp_canary_value"}') == '{"k": "<redacted>"}'
    assert repr(Cell(Target("0.62", "v0"), ModeChoice("host"))) == "Cell('0.62-host')"
    moved = secrets.like(s, "ghp_canary_value:4000")  # a value derived from a secret stays one
    assert isinstance(moved, secrets.Secret) and f"{moved}" == "<redacted>"


def test_which_values_are_secret() -> None:
    kept = secrets.conceal({"SANDBOX_USER_ID": "1000", "MY_SETTING": "x", "GITHUB_TOKEN": "y"}, "-e")
    assert not isinstance(kept["SANDBOX_USER_ID"], secrets.Secret)  # a plain OpenHands setting the harness places
    assert isinstance(kept["MY_SETTING"], secrets.Secret) and isinstance(kept["GITHUB_TOKEN"], secrets.Secret)
    assert secrets.redact_env(kept) == {"SANDBOX_USER_ID": "1000", "MY_SETTING": "<redacted>",
                                        "GITHUB_TOKEN": "<redacted>"}


def test_the_line_people_read_names_secrets_and_env_files_as_written() -> None:
    from harness import generations, modes

    env = {**secrets.conceal({"GITHUB_TOKEN": "ghp_from_file"}, ".env"), "LOG_ALL_EVENTS": "true",
           **secrets.conceal({"APPV": "value-of-app-env"}, "--app-env")}
    lau = modes.get("host-gateway").launch(generations.V0, image="app", env=env, host_port=1)
    line = modes.AppLaunch(**{**lau.__dict__, "env_files": (".env",)}).docker_run()
    assert "--env-file .env -e LOG_ALL_EVENTS=true -e APPV " in line and "ghp_" not in line and "value-of" not in line
    # the container gets the real values
    assert [v for f, v in lau.options(placed=True) if f == "-e" and v.startswith("APPV=")] == ["APPV=value-of-app-env"]


def test_app_env_errors_and_crash_lines_name_the_key_never_the_value() -> None:
    from harness import matrix
    from harness.errors import InputError

    with pytest.raises(InputError) as e:
        matrix.parse_app_env(["BAD-KEY=sk-canary-999"])
    assert "sk-canary" not in str(e.value) and "'BAD-KEY'" in str(e.value)
    assert secrets.scrub_argv(["run", "--app-env", "K=v1", "--app-env=J=v2"]) == [
        "run", "--app-env", "K=<redacted>", "--app-env=J=<redacted>"]
