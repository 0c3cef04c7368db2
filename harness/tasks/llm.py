"""The scripted LLM: an OpenAI-compatible endpoint that drives the real agent loop with no
key and no cost, deterministically.

Each task's prompt carries a marker (`[oh-matrix task NAME NONCE]`); the harness hands the
server one script per marker (JSON in OH_MATRIX_LLM_SCRIPTS). For a request, the server
finds the last user message with a marker and counts the assistant tool calls after it:
that is the step to answer. Steps are generation-neutral (`bash`, `create`, `replace`,
`ipython`, `finish`) and become the tool the request OFFERS, in the schema it offers; which
tool names mean "bash", "edit", "ipython" and "finish" is the generation's business
(harness/generations.py), handed over in OH_MATRIX_LLM_TOOLS. A `say` step is no tool call:
text to the user, as a model answers a question (it ends the agent's turn: V0 waits for the
user, V1 finishes); with `from_output` its text is expanded (`\1`) from a regular expression's
match in the last tool result the request carries, as a model reads what the runtime printed.

- V0 CodeActAgent (openhands/agenthub/codeact_agent/function_calling.py at 0.62.0):
  `execute_bash {command, security_risk}`, `str_replace_editor {command: create|str_replace,
  path, file_text | old_str, new_str, security_risk}`, `execute_ipython_cell {code,
  security_risk}`, `finish {message}`.
- V1 SDK agent (openhands-tools 1.34.0): `terminal {command}`, `file_editor` with the same
  commands, `finish {message}`; `security_risk`/`summary` added by the SDK to every schema
  (sdk/agent/utils.py) and filled here when offered.

A request without tools is a title request (V0 app, V1 agent-server): answered with text.
`stream: true` (V1 forces it for the agent) gets SSE chunks. Every request is recorded
(one JSON line; of the key only a fingerprint) so a task can tell "the LLM was never called" from
"the action failed".

Stdlib only: the harness runs this file with `python3 -c` in a sidecar container that
shares the network namespace of whoever calls the LLM (see tasks.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "openai/gpt-4o"  # a name both generations know to support native tool calls
API_KEY = "oh-matrix-scripted"  # not a secret: the scripted endpoint ignores it
SCRIPTS_ENV = "OH_MATRIX_LLM_SCRIPTS"
TOOLS_ENV = "OH_MATRIX_LLM_TOOLS"  # {"bash": [names], "edit": [names], "ipython": [names], "finish": [names]}
RECORD = "/tmp/oh-matrix-llm.jsonl"
NONCE_SLOT = "0n0nce0"  # in a `NAME *` script: replaced by the nonce of the task at hand
MARKER = re.compile(r"\[oh-matrix task ([a-z0-9-]+) ([0-9a-f]+)\]")

Step = dict[str, Any]
Message = dict[str, Any]


def marker(task: str, nonce: str) -> str:
    return f"[oh-matrix task {task} {nonce}]"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def position(messages: list[Message]) -> tuple[str | None, int, str]:
    """(marker key, step index, last tool result) for the latest task in the conversation."""
    key, results = progress(messages)
    return key, len(results), results[-1] if results else ""


def progress(messages: list[Message]) -> tuple[str | None, list[str]]:
    """(marker key, the result of each tool call answered since its message, in order)."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") != "user":
            continue
        found = MARKER.findall(_text(m.get("content")))
        if found:
            name, nonce = found[-1]
            after = messages[i + 1:]
            calls = sum(1 for a in after if a.get("role") == "assistant" and a.get("tool_calls"))
            results = [_text(a.get("content")) for a in after if a.get("role") == "tool"]
            return f"{name} {nonce}", (results + [""] * calls)[:calls]
    return None, []


# The lines a release frames a tool result with (V0: "[The command completed with exit code
# 0.]", "[Previous command outputs are truncated. ...]", "[Current working directory: ...]").
FRAME_LINE = re.compile(r"^\[[^\n]*\]$", re.M)


def unframed(result: str) -> str:
    """What the tool itself printed: the result without the release's bracketed lines."""
    return FRAME_LINE.sub("", result).strip()


def step_index(script: list[Step], results: list[str]) -> int:
    """The step to answer after these results. A step marked `look_again` whose result came
    back with no output of its own (only the release's framing) is issued once more, as a
    model that expected output looks again: V0's bash tool can answer a quick command on a
    busy machine before the shell has echoed it (OpenHands' runtime/utils/bash.py at 0.62.0)."""
    index, again = 0, set()
    for result in results:
        step = script[min(index, len(script) - 1)]
        if step.get("look_again") and not unframed(result) and index not in again:
            again.add(index)
            continue
        index += 1
    return index


def _offered(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in tools if t.get("type") == "function"}


def said(step: Step, last_result: str) -> str:
    """A `say` step's text: as written, or expanded from its `from_output` match in the
    last tool result (a model that cannot find its answer says so)."""
    pattern = step.get("from_output")
    if not pattern:
        return str(step["text"])
    m = re.search(pattern, last_result)
    if m is None:
        return f"I could not find /{pattern}/ in what the runtime printed: {last_result[-300:]!r}"
    try:
        return m.expand(str(step["text"]))
    except (re.error, IndexError) as e:  # e.g. \2 with one group: say so, as text
        return f"{step['text']} (oh-matrix: cannot expand it from /{pattern}/: {e})"


def tool_call(step: Step, offered: dict[str, dict[str, Any]],
              tools: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    """A neutral step as the tool (name, arguments) this request offers; `tools` says which
    names mean bash, edit and finish."""
    def pick(kind: str) -> str:
        names = tools.get(kind) or []
        for n in names:
            if n in offered:
                return n
        raise LookupError(f"none of {names} ({kind}) offered (offered: {sorted(offered)})")

    do = step["do"]
    if do == "bash":
        name, args = pick("bash"), {"command": step["command"]}
    elif do == "create":
        name, args = pick("edit"), {"command": "create", "path": step["path"], "file_text": step["text"]}
    elif do == "replace":
        name, args = pick("edit"), {"command": "str_replace", "path": step["path"],
                                    "old_str": step["old"], "new_str": step["new"]}
    elif do == "ipython":
        name, args = pick("ipython"), {"code": step["code"]}
    elif do == "finish":
        name, args = pick("finish"), {"message": step.get("message", "done")}
    else:
        raise LookupError(f"unknown step {do!r}")
    props = (offered[name].get("parameters") or {}).get("properties") or {}
    if "security_risk" in props:
        args["security_risk"] = "LOW"
    if "summary" in props:
        args["summary"] = f"oh-matrix step: {do}"
    return name, args


class Scripts:
    def __init__(self, scripts: dict[str, list[Step]], record: str | None,
                 tools: dict[str, list[str]] | None = None) -> None:
        self.scripts = scripts
        self.record = record
        self.tools = tools or {}
        self.lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(assistant message, record line) for one chat-completions request."""
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        key, results = progress(messages)
        last_result = results[-1] if results else ""
        script = [*self.script(key), {"do": "finish", "message": "done"}]
        if key is None:  # a greeting: nothing to do
            script = [{"do": "finish", "message": "ready"}]
        step = step_index(script, results)
        rec: dict[str, Any] = {"t": time.time(), "stream": bool(body.get("stream")),
                               "model": body.get("model"), "messages": len(messages),
                               "tools": sorted(_offered(tools)), "task": key, "step": step,
                               "last_tool_result": last_result[:500]}
        if not tools:
            rec["answer"] = "text"
            return {"role": "assistant", "content": "oh-matrix scripted task"}, rec
        current = script[min(step, len(script) - 1)]
        if current["do"] == "say":
            text = said(current, last_result)
            rec["answer"], rec["said"] = "say", text[:500]
            return {"role": "assistant", "content": text}, rec
        try:
            name, args = tool_call(current, _offered(tools), self.tools)
        except LookupError as e:
            rec["answer"], rec["error"] = "error", str(e)
            return {"role": "assistant", "content": f"oh-matrix scripted LLM cannot act: {e}"}, rec
        rec["answer"] = name
        call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, rec

    def script(self, key: str | None) -> list[Step]:
        """The steps for `NAME NONCE`: its own script, else the script `NAME *` with
        NONCE_SLOT replaced (a standing endpoint that serves any run of a task)."""
        if key is None:
            return []
        if key in self.scripts:
            return self.scripts[key]
        name, _, nonce = key.partition(" ")
        template = json.dumps(self.scripts.get(f"{name} *", []))
        return list(json.loads(template.replace(NONCE_SLOT, nonce)))

    def write(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec)
        print(line, flush=True)
        if self.record:
            with self.lock, open(self.record, "a") as f:
                f.write(line + "\n")


def completion(message: dict[str, Any], model: str) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def chunks(message: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The same answer as OpenAI streams it: role, then content or tool-call deltas, then
    the finish reason, then usage."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    calls = message.get("tool_calls") or []
    for i, c in enumerate(calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                          "function": {"name": c["function"]["name"], "arguments": ""}}]}))
        out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": c["function"]["arguments"]}}]}))
    if message.get("content"):
        out.append(chunk({"content": message["content"]}))
    out.append(chunk({}, "tool_calls" if calls else "stop"))
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})
    return out


def fingerprint(authorization: str | None) -> str | None:
    """Which key the caller sent, without the key: the first 12 hex digits of its sha256."""
    if not authorization:
        return None
    token = authorization.removeprefix("Bearer ").strip()
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def handler(scripts: Scripts) -> type[BaseHTTPRequestHandler]:
    from http.server import BaseHTTPRequestHandler  # the server's alone: the task catalog imports this module too

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the record is the log
            pass

        def _json(self, code: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": MODEL.split("/", 1)[1], "object": "model"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            message, rec = scripts.answer(body)
            rec["path"], rec["key_sha256"] = self.path, fingerprint(self.headers.get("Authorization"))
            scripts.write(rec)
            model = str(body.get("model") or MODEL)
            if not body.get("stream"):
                self._json(200, completion(message, model))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for c in chunks(message, model):
                self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def serve(host: str, port: int, scripts: Scripts) -> ThreadingHTTPServer:
    from http.server import ThreadingHTTPServer

    return ThreadingHTTPServer((host, port), handler(scripts))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="oh-matrix scripted LLM")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", default=RECORD)
    a = ap.parse_args(argv)
    scripts = Scripts(json.loads(os.environ.get(SCRIPTS_ENV) or "{}"), a.record,
                      json.loads(os.environ.get(TOOLS_ENV) or "{}"))
    server = serve(a.host, a.port, scripts)
    print(f"oh-matrix scripted LLM on {a.host}:{a.port}, {len(scripts.scripts)} scripts", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
