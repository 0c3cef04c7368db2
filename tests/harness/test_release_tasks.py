"""Real agent work on the real releases: the scripted LLM drives the release's own agent
loop (LLM -> action -> runtime -> observation), and every verdict is read back from the
runtime or the git server, never from what the agent said."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.generations import V0
from harness.host import cleanup, docker_host
from harness.host.containers import free_port
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet
from harness.tasks import CATALOG, DEFAULT, Where, llm
from harness.tasks.taskrun import LLM_SOURCE, llm_env

pytestmark = [pytest.mark.engine, pytest.mark.release]  # run one at a time: see noxfile.py
ROOT = Path(__file__).resolve().parents[2]
Leftovers = Callable[[str], list[str]]


def run(images: ImageSet, run_id: str, tasks: list[str], env: dict[str, str] | None = None) -> CellResult:
    cell = Cell(Target(images.tag, images.api), ModeChoice("host-gateway"))
    return run_cell(CellPlan(run_id, cell, images, env or {}, connect_budget=150, app_budget=150,
                             tasks=tasks, task_budget=90))


def assert_all_passed(r: CellResult) -> None:
    assert r.connect.verdict == "pass", r.connect.explain()
    assert [t.name for t in r.tasks] == DEFAULT
    for t in r.tasks:
        assert t.verdict == "pass", t.model_dump_json(indent=1)
        assert t.llm_calls >= 2, t  # at least one action and the finish, through the agent
        assert t.actions and t.actions[-1].startswith("finish"), t


def test_v0_catalog_passes_through_the_real_agent_loop(v0_images: ImageSet, run_id: str,
                                                      leftovers: Leftovers) -> None:
    r = run(v0_images, run_id, DEFAULT)
    assert_all_passed(r)
    assert any(a.startswith("run: git clone git://127.0.0.1:") for a in r.tasks[-1].actions)
    assert leftovers(run_id) == []  # the app, the runtime and both sidecars are gone


def test_v1_catalog_passes_through_the_real_agent_loop(v1_images: ImageSet, run_id: str,
                                                      leftovers: Leftovers) -> None:
    r = run(v1_images, run_id, DEFAULT)
    assert_all_passed(r)
    assert any(a.startswith("terminal: ") for a in r.tasks[1].actions)  # the SDK's own tool names
    assert leftovers(run_id) == []


def test_v0_replays_recorded_tasks_with_no_llm_and_judges_them_by_their_effect(
        v0_images: ImageSet, run_id: str, leftovers: Leftovers, monkeypatch: pytest.MonkeyPatch) -> None:
    # --llm replay: OpenHands re-executes a shipped trajectory (replay_json); nobody calls an
    # LLM. A tampered recording (the edit writes the wrong word) must fail the same effect check.
    from harness.tasks import replay
    from harness.tasks.taskrun import LlmChoice

    shipped = replay.load

    def tampered(task: str, nonce: str, git_port: int) -> replay.Recording | None:
        rec = shipped(task, nonce, git_port)
        if rec is None or task != "edit-file":
            return rec
        text = json.dumps(rec.events).replace("goodbye", "farewell")
        return replay.Recording(rec.task, rec.nonce, rec.git_port, json.loads(text))

    monkeypatch.setattr(replay, "load", tampered)
    cell = Cell(Target(v0_images.tag, v0_images.api), ModeChoice("host-gateway"))
    r = run_cell(CellPlan(run_id, cell, v0_images, {}, connect_budget=150, app_budget=150,
                          tasks=["repo", "edit-file"], task_budget=90, llm=LlmChoice(replay=True)))
    assert r.connect.verdict == "pass", r.connect.explain()
    repo, edit = r.tasks
    assert repo.verdict == "pass" and repo.llm_calls == 0, repo.model_dump_json(indent=1)
    assert any(a.startswith("run: git clone git://127.0.0.1:") for a in repo.actions), repo.actions
    assert edit.verdict == "fail" and edit.llm_calls == 0, edit.model_dump_json(indent=1)
    assert "farewell" in edit.detail, edit.detail
    assert leftovers(run_id) == []  # each replay's own runtime is gone too


def test_a_read_only_workspace_fails_create_file_with_the_runtime_error(v1_images: ImageSet, run_id: str) -> None:
    # The app mounts this host folder read-only as the sandbox's workspace (SANDBOX_VOLUMES):
    # the runtime still connects, but nothing can be written where the agent works.
    with tempfile.TemporaryDirectory(prefix="oh-matrix-ro-") as d:
        os.chmod(d, 0o777)
        r = run(v1_images, run_id, ["create-file"], {"SANDBOX_VOLUMES": f"{d}:/workspace/project:ro"})
    assert r.connect.verdict == "pass", r.connect.explain()
    [t] = r.tasks
    assert t.verdict == "fail"
    assert "not in the runtime" in t.detail and "Read-only file system" in t.detail, t
    assert any(e.startswith("runtime error:") and "Read-only" in e for e in t.evidence)
    assert t.llm_calls == 2  # the LLM was called: the action failed, not the model


@pytest.fixture
def users_endpoint(client: docker.DockerClient, v0_images: ImageSet, run_id: str) -> tuple[str, str]:
    """A stand-in for the user's own OpenAI-compatible endpoint (the scripted LLM), on the
    bridge gateway address only, where host-gateway cells reach it as host.docker.internal."""
    gateway = docker_host.bridge_gateway(client)
    assert gateway, "no default bridge gateway"
    port = free_port()
    # Serves any run of the V0 tasks: the task's nonce comes with its prompt.
    scripts = {f"{n} *": CATALOG[n].steps(Where(V0.workspace, llm.NONCE_SLOT)) for n in CATALOG}
    c = client.containers.run(v0_images.app_image, ["python3", "-c", LLM_SOURCE, "--host", "0.0.0.0",
                                                    "--port", "8080"],
                              environment=llm_env(V0, scripts),
                              entrypoint=[], detach=True, name=f"oh-matrix-llm-{run_id[5:13]}",
                              labels=cleanup.labels(run_id), ports={"8080/tcp": (gateway, port)})
    return c.name, f"http://host.docker.internal:{port}/v1"


def test_a_real_llm_key_reaches_the_model_and_no_file_or_output(client: docker.DockerClient,
                                                                users_endpoint: tuple[str, str],
                                                                tmp_path: Path) -> None:
    canary = "sk-canary-" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:24]
    name, base_url = users_endpoint
    m = tmp_path / "m.toml"
    m.write_text('[run]\nbackend = "pypi"\ntasks = ["create-file", "run-command"]\n'
                 '[[targets]]\ntag = "0.62"\n[modes.host-gateway]\n')
    out = tmp_path / "out"
    env = {**os.environ, "LLM_MODEL": "openai/gpt-4o", "LLM_API_KEY": canary, "LLM_BASE_URL": base_url}
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(m), "--out", str(out),
                        "-n", "1", "-k", "create-file"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    [cell] = results["cells"]
    assert [(t["name"], t["verdict"]) for t in cell["tasks"]] == [("create-file", "pass")]  # -k chose the task
    assert "openai/gpt-4o" in " ".join(cell["notes"])
    # The key went through the app to the model: the endpoint saw it (as a fingerprint).
    _, rec = client.containers.get(name).exec_run(["cat", "/tmp/oh-matrix-llm.jsonl"])
    seen = {json.loads(line).get("key_sha256") for line in rec.decode().splitlines()}
    assert hashlib.sha256(canary.encode()).hexdigest()[:12] in seen
    # ... and nowhere the harness writes or prints.
    assert canary not in p.stdout + p.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert canary not in f.read_text(errors="replace"), f


def test_the_headless_entry_point_runs_tasks_and_is_diagnosed_like_the_api(v0_images: ImageSet, run_id: str,
                                                                          leftovers: Leftovers) -> None:
    def headless(mode: str) -> CellResult:
        cell = Cell(Target(v0_images.tag, "v0"), ModeChoice(mode), "headless")
        return run_cell(CellPlan(run_id, cell, v0_images, {}, connect_budget=150, app_budget=150,
                                 tasks=["edit-file", "repo"], task_budget=120))

    ok = headless("host-gateway")
    assert ok.connect.verdict == "pass", ok.connect.explain()
    # the two tasks whose runtime must be prepared (a seeded file, the git server) while the
    # process is already running
    assert [(t.name, t.verdict) for t in ok.tasks] == [("edit-file", "pass"), ("repo", "pass")], ok.tasks
    # the key by name, as docker passes it on from the caller's environment: never a value
    assert "openhands.core.main -t" in (ok.docker_run or "") and " -e LLM_API_KEY " in (ok.docker_run or "")
    assert ok.entrypoint == "headless" and ok.id.endswith("-headless")
    bad = headless("bridge")
    assert (bad.connect.verdict, bad.connect.cause) == ("fail", "dns-unresolved"), bad.connect.explain()
    assert bad.tasks == []  # the entry point never reached a runtime: no task ran
    assert leftovers(run_id) == []
