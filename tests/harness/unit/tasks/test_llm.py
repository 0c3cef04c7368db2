"""The scripted LLM over real HTTP on loopback: the schema each generation's agent reads
(tool calls, SSE chunks), the step it is at, and what it records."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import generations
from harness.tasks import llm
from harness.tasks.taskrun import llm_env

# what the harness hands the sidecar: each generation's names for bash, edit and finish
TOOLS = {kind: [getattr(g.tools, kind) for g in generations.GENERATIONS.values() if getattr(g.tools, kind)]
         for kind in ("bash", "edit", "finish", "ipython")}


def tool(name: str, *params: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"properties": {p: {} for p in params}}}}


V0_TOOLS = [  # as CodeActAgent 0.62 offers them (trimmed to what matters)
    tool("execute_bash", "command", "is_input", "security_risk"),
    tool("str_replace_editor", "command", "path", "file_text", "old_str", "new_str", "security_risk"),
    tool("finish", "message"),
]
V1_TOOLS = [  # as the SDK agent 1.34 offers them
    tool("terminal", "command", "summary", "security_risk"),
    tool("file_editor", "command", "path"),
    tool("finish", "message"),
]
SCRIPTS = {"create-file abc123": [{"do": "create", "path": "/w/f.txt", "text": "x\n"},
                                  {"do": "bash", "command": "cat /w/f.txt"}]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    record = tmp_path / "llm.jsonl"
    srv = llm.serve("127.0.0.1", 0, llm.Scripts(SCRIPTS, str(record), TOOLS))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", record
    srv.shutdown()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def called(name: str, args: str = "{}") -> dict[str, Any]:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}]}


def test_v0_steps_follow_the_conversation(server: tuple[str, Path]) -> None:
    url, record = server
    msgs = [{"role": "system", "content": "sys"}, user(f"do it {llm.marker('create-file', 'abc123')}")]
    r = httpx.post(f"{url}/chat/completions", json={"model": "gpt-4o", "messages": msgs, "tools": V0_TOOLS},
                   headers={"Authorization": "Bearer canary-123"}).json()
    call = r["choices"][0]["message"]["tool_calls"][0]
    assert r["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "str_replace_editor"
    assert json.loads(call["function"]["arguments"]) == {"command": "create", "path": "/w/f.txt", "file_text": "x\n",
                                                         "security_risk": "LOW"}
    msgs += [called("str_replace_editor"), {"role": "tool", "content": "File created"}]
    r = httpx.post(f"{url}/chat/completions", json={"messages": msgs, "tools": V0_TOOLS}).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "execute_bash"
    msgs += [called("execute_bash"), {"role": "tool", "content": "x"}]
    r = httpx.post(f"{url}/chat/completions", json={"messages": msgs, "tools": V0_TOOLS}).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "finish"
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2] and lines[2]["last_tool_result"] == "x"
    assert lines[0]["key_sha256"] == hashlib.sha256(b"canary-123").hexdigest()[:12]
    assert "canary-123" not in record.read_text()


def test_v1_gets_sse_chunks_in_its_own_tool_names(server: tuple[str, Path]) -> None:
    url, _ = server
    msgs = [user(llm.marker("create-file", "abc123")), called("file_editor"), {"role": "tool", "content": "ok"}]
    with httpx.stream("POST", f"{url}/chat/completions",
                      json={"messages": msgs, "tools": V1_TOOLS, "stream": True}) as r:
        assert r.headers["content-type"] == "text/event-stream"
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    name = next(d["tool_calls"][0]["function"]["name"] for d in deltas if d.get("tool_calls"))
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas if d.get("tool_calls"))
    assert name == "terminal"
    assert json.loads(args) == {"command": "cat /w/f.txt", "summary": "oh-matrix step: bash", "security_risk": "LOW"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_a_title_request_gets_text_and_a_greeting_finishes(server: tuple[str, Path]) -> None:
    url, _ = server
    title = httpx.post(f"{url}/chat/completions", json={"messages": [user("name this")]}).json()
    assert title["choices"][0]["message"]["content"] and title["choices"][0]["finish_reason"] == "stop"
    hello = httpx.post(f"{url}/chat/completions", json={"messages": [user("Say hello.")], "tools": V1_TOOLS}).json()
    assert hello["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "finish"
    assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "gpt-4o"


def test_a_tool_the_release_does_not_offer_is_said_not_faked(server: tuple[str, Path]) -> None:
    url, record = server
    only_finish = [t for t in V0_TOOLS if t["function"]["name"] == "finish"]
    r = httpx.post(f"{url}/chat/completions", json={
        "messages": [user(llm.marker("create-file", "abc123"))], "tools": only_finish}).json()
    assert "cannot act" in r["choices"][0]["message"]["content"]
    assert json.loads(record.read_text().splitlines()[-1])["answer"] == "error"


def test_the_latest_task_marker_wins() -> None:
    msgs = [user(llm.marker("create-file", "aaa")), called("finish"), user(llm.marker("repo", "bbb")),
            called("execute_bash")]
    assert llm.position(msgs)[:2] == ("repo bbb", 1)


def test_a_standing_script_serves_any_nonce() -> None:
    s = llm.Scripts({"create-file *": [{"do": "bash", "command": f"touch /w/{llm.NONCE_SLOT}"}]}, None)
    assert s.script("create-file 77ab") == [{"do": "bash", "command": "touch /w/77ab"}]
    assert s.script("repo 77ab") == []


def test_the_sidecar_gets_the_generations_own_tool_names() -> None:
    env = llm_env(generations.V1, SCRIPTS)
    assert json.loads(env[llm.TOOLS_ENV]) == {"bash": ["terminal"], "edit": ["file_editor"], "finish": ["finish"],
                                              "ipython": []}  # the V1 SDK agent has no IPython tool
    assert json.loads(env[llm.SCRIPTS_ENV]) == SCRIPTS
    assert json.loads(llm_env(generations.V0, {})[llm.TOOLS_ENV])["ipython"] == ["execute_ipython_cell"]


def test_an_ipython_step_is_v0s_execute_ipython_cell_and_v1_cannot_fake_it() -> None:
    ipython = [*V0_TOOLS, tool("execute_ipython_cell", "code", "security_risk")]
    step = {"do": "ipython", "code": "print(1)"}
    assert llm.tool_call(step, {t["function"]["name"]: t["function"] for t in ipython}, TOOLS) == (
        "execute_ipython_cell", {"code": "print(1)", "security_risk": "LOW"})
    with pytest.raises(LookupError, match="ipython"):
        llm.tool_call(step, {t["function"]["name"]: t["function"] for t in V1_TOOLS}, TOOLS)


def test_a_say_step_answers_in_text_from_what_the_runtime_printed() -> None:
    """t07's answer depends on what the script printed: the LLM reads the last tool result it
    is sent, as a model does, and answers with no tool call (the agent's turn ends)."""
    s = llm.Scripts({"t07 ab12": [{"do": "bash", "command": "python3 s.py"},
                                  {"do": "say", "text": r"The secret number is \1.", "from_output": r"number: (\d+)"}]},
                    None, TOOLS)
    msgs = [user(llm.marker("t07", "ab12")), called("execute_bash"),
            {"role": "tool", "content": "Hello John, you are 25 years old. Tell you a secret number: 707"}]
    message, rec = s.answer({"messages": msgs, "tools": V0_TOOLS})
    assert message == {"role": "assistant", "content": "The secret number is 707."}
    assert (rec["answer"], rec["said"]) == ("say", "The secret number is 707.")
    assert llm.chunks(message, "m")[-2]["choices"][0]["finish_reason"] == "stop"  # streamed: text, no tool call
    msgs[-1]["content"] = "Traceback: no such file"
    message, _ = s.answer({"messages": msgs, "tools": V0_TOOLS})
    assert "could not find" in message["content"] and "707" not in message["content"]
    fixed = {"do": "say", "text": "It is 123."}
    assert llm.said(fixed, "anything") == "It is 123."


def test_a_step_that_expects_output_is_issued_again_when_the_tool_gave_back_nothing() -> None:
    script = [{"do": "bash", "command": "echo x | tee f", "look_again": True}, {"do": "finish"}]
    assert llm.step_index(script, []) == 0
    assert llm.step_index(script, [""]) == 0  # empty: look again
    assert llm.step_index(script, ["", "x"]) == 1  # then on
    assert llm.step_index(script, ["", ""]) == 1  # once only: a model does not loop
    assert llm.step_index(script, ["x"]) == 1
    plain = [{"do": "bash", "command": "mkdir d"}, {"do": "finish"}]
    assert llm.step_index(plain, [""]) == 1  # an empty result is fine for a step that expects none


def test_a_result_of_nothing_but_the_releases_framing_is_nothing() -> None:
    """What V0's agent sent the LLM for a command its bash session answered unread (0.62.0,
    tests/harness/data/v0-run-command-unread.json): a prefix, no output, the exit code."""
    script = [{"do": "bash", "command": "echo x | tee f", "look_again": True}, {"do": "finish"}]
    framed = ("[Previous command outputs are truncated. Showing the last 1 lines of the output below.]\n\n"
              "[The command completed with exit code 0.]")
    assert llm.unframed(framed) == ""
    assert llm.step_index(script, [framed]) == 0  # looks again
    assert llm.step_index(script, [framed + "\nx:42\n[The command completed with exit code 0.]"]) == 1


def test_a_task_file_command_whose_output_is_read_next_looks_again() -> None:
    from harness.tasks.taskfile import parse

    tasks = parse("""
[[tasks]]
name = "secret"
instruction = "Tell me the number."
check = { message_contains = "7" }
[[tasks.steps]]
bash = "echo 7"
[[tasks.steps]]
say = 'It is \\1.'
from_output = '(\\d+)'
""", "t.toml", "file:t.toml")
    steps = tasks[0].steps
    assert steps is not None
    assert [s.get("look_again", False) for s in steps] == [True, False]
