"""The `openhands` CLI (its own package on PyPI) as an automation drives it: the facts of
its releases, its command and settings, and its persisted conversation read back.

Facts, read from its wheels (openhands 1.0.0 to 1.16.0, `openhands_cli/`): `--headless` first
ships in 1.5.0, `--override-with-envs` in 1.10.0, and from 1.11.0 a headless run builds its
agent from LLM_MODEL, LLM_API_KEY and LLM_BASE_URL alone (stores/agent_store.py
AgentStore.load_or_create); before, it needs the settings file its interactive setup writes,
and without one it exits 0 saying "Headless mode requires existing settings". Headless never
asks for a confirmation (tui/textual_app.py: NeverConfirm), and its exit code is 0 whether
the agent succeeded or not: a task is judged by its effect. The agent is the SDK's, in the
CLI's own process (LocalConversation, LocalWorkspace at OPENHANDS_WORK_DIR or the working
folder): no sandbox. Its events are kept as the SDK keeps them, under
OPENHANDS_CONVERSATIONS_DIR (`<id>/events/event-NNNNN-<id>.json`, `<id>/base_state.json`).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from dataclasses import replace
from typing import Any

from harness.generations import V1, version_tuple
from harness.openhands import LlmSettings, Turn
from harness.openhands.v1 import turn_from_events

HEADLESS_FROM = (1, 11, 0)
HEADLESS_WHY = ("--headless first ships in openhands 1.5.0 and --override-with-envs in 1.10.0; before 1.11.0 a "
                "headless run needs the settings file its interactive setup writes "
                "(openhands_cli/stores/agent_store.py: AgentStore.load returns None without "
                "~/.openhands/agent_settings.json, and the app exits 0 saying 'Headless mode requires "
                "existing settings')")
WORKDIR = V1.workspace  # where the CLI works: the SDK agent's workspace, as in V1's sandbox
CONVERSATIONS = "/tmp/oh-matrix-conversations"
# The CLI's agent is V1's SDK agent (terminal, file_editor, task_tracker) in its own process,
# with no browser tool set and no IPython (openhands_cli/setup.py get_default_cli_agent).
AGENT = replace(V1, capabilities=(), lacks_why={
    "browser": "the CLI's default agent has no browser tools (openhands_cli/setup.py get_default_cli_agent)",
    "ipython": "the CLI's SDK agent has no IPython tool"})
# Every other address the CLI calls when it starts (PyPI's JSON for its update check,
# openhands_cli/version_check.py; GitHub for the public skills, the SDK's skills loader) goes
# to a port nothing listens on: the harness sends no traffic off this machine.
DEAD_PROXY = "http://127.0.0.1:9"


def headless_lack(version: str) -> str | None:
    """Why this CLI release cannot run the way an automation runs it, or None."""
    mine = version_tuple(version)
    return None if mine is None or mine >= HEADLESS_FROM else f"openhands {version}: {HEADLESS_WHY}"


def command(prompt: str) -> list[str]:
    return ["openhands", "--headless", "--override-with-envs", "-t", prompt]


def cli_env(llm: LlmSettings) -> dict[str, str]:
    """How the CLI is configured with no settings file (--override-with-envs reads LLM_*)."""
    return {"LLM_MODEL": llm.model, "LLM_API_KEY": llm.api_key, "LLM_BASE_URL": llm.base_url}


def harness_env() -> dict[str, str]:
    """What the harness adds for its own reading and for this machine, not part of the line a
    person runs: where the conversation is kept and the CLI works, and the dead proxy."""
    return {"OPENHANDS_CONVERSATIONS_DIR": CONVERSATIONS, "OPENHANDS_WORK_DIR": WORKDIR,
            "HTTPS_PROXY": DEAD_PROXY, "https_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def read_conversation(archive: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The events of the persisted conversation, in their order, and its execution status,
    from a tar of CONVERSATIONS (docker's get_archive)."""
    events: list[tuple[str, dict[str, Any]]] = []
    state = None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is None:
                continue
            with contextlib.suppress(ValueError):
                if "/events/event-" in m.name and m.name.endswith(".json"):
                    events.append((m.name.rsplit("/", 1)[1], json.loads(f.read())))
                elif m.name.endswith("/base_state.json"):
                    state = str(json.loads(f.read()).get("execution_status") or "") or None
    return [e for _, e in sorted(events, key=lambda x: x[0])], state


def turn(events: list[dict[str, Any]], state: str | None, exited: bool) -> Turn:
    t = turn_from_events(events, None, state or ("finished" if exited else "running"))
    t.done = exited
    return t
