"""Real agent work on the real releases: the scripted LLM drives the release's own agent
loop (LLM -> action -> runtime -> observation), and every verdict is read back from the
runtime or the git server, never from what the agent said.

One real run, many assertions (tests/harness/shared.py): every cell of this module runs at
once before the first test, holding boot slots as any cell does. The catalogs run on the
session's 0.62 and 1.11 host-gateway cells, whose connect test_release_v0/v1.py's documented
command checks, and the read-only workspace on its 1.11 one, which also runs
test_release_task_files.py's state checks (each test reads the tasks it asked for)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from shared import HOST_GATEWAY, READ_ONLY_V1, Ran, Shared, session_cells

from harness.cells.plan import CellPlan
from harness.cells.runner import run_cell
from harness.generations import V0
from harness.host import cleanup, docker_host
from harness.host.containers import free_port
from harness.matrix import Cell, ModeChoice, Target
from harness.model import CellResult, ImageSet, TaskResult
from harness.tasks import CATALOG, DEFAULT, Where, llm
from harness.tasks.taskrun import LLM_SOURCE, llm_env

ROOT = Path(__file__).resolve().parents[3]
Leftovers = Callable[[str], list[str]]


def builtin(r: CellResult) -> list[TaskResult]:
    """The built-in catalog's tasks of a cell (the session's cells run other catalogs too)."""
    return [t for t in r.tasks if t.catalog == "builtin"]


def assert_all_passed(r: CellResult) -> None:
    assert r.connect.verdict == "pass", r.connect.explain()
    assert [t.name for t in builtin(r)] == DEFAULT
    for t in builtin(r):
        assert t.verdict == "pass", t.model_dump_json(indent=1)
        assert t.llm_calls >= 2, t  # at least one action and the finish, through the agent
        assert t.actions and t.actions[-1].startswith("finish"), t


def test_v0_catalog_passes_through_the_real_agent_loop(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells[HOST_GATEWAY.format("0.62")]
    r, run_id = ran.value, ran.run_id
    assert_all_passed(r)
    assert any(a.startswith("run: git clone git://127.0.0.1:") for a in builtin(r)[-1].actions)
    assert leftovers(run_id) == []  # the app, the runtime and both sidecars are gone


def test_v1_catalog_passes_through_the_real_agent_loop(cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    ran = cells[HOST_GATEWAY.format("1.11")]
    r, run_id = ran.value, ran.run_id
    assert_all_passed(r)
    assert any(a.startswith("terminal: ") for a in builtin(r)[1].actions)  # the SDK's own tool names
    assert leftovers(run_id) == []


def replayed(images: ImageSet) -> Callable[[str], CellResult]:
    """--llm replay: OpenHands re-executes a shipped trajectory (replay_json); nobody calls an
    LLM. The recording of edit-file is tampered with (the edit writes the wrong word) while the
    module's cells run (`cells`): nothing else there replays."""
    def cell(run_id: str) -> CellResult:
        from harness.tasks.taskrun import LlmChoice

        c = Cell(Target(images.tag, images.api), ModeChoice("host-gateway"))
        return run_cell(CellPlan(run_id, c, images, {}, connect_budget=150, app_budget=150,
                                 tasks=["repo", "edit-file"], task_budget=90, llm=LlmChoice(replay=True)))
    return cell


def tampered_recordings(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.tasks import replay

    shipped = replay.load

    def tampered(task: str, nonce: str, git_port: int) -> replay.Recording | None:
        rec = shipped(task, nonce, git_port)
        if rec is None or task != "edit-file":
            return rec
        text = json.dumps(rec.events).replace("goodbye", "farewell")
        return replay.Recording(rec.task, rec.nonce, rec.git_port, json.loads(text))

    monkeypatch.setattr(replay, "load", tampered)


def test_v0_replays_recorded_tasks_with_no_llm_and_judges_them_by_their_effect(
        cells: dict[str, Ran[Any]], leftovers: Leftovers) -> None:
    # --llm replay: OpenHands re-executes a shipped trajectory (replay_json); nobody calls an
    # LLM. A tampered recording (the edit writes the wrong word) must fail the same effect check.
    ran = cells["0.62-replay"]
    r, run_id = ran.value, ran.run_id
    assert r.connect.verdict == "pass", r.connect.explain()
    repo, edit = r.tasks
    assert repo.verdict == "pass" and repo.llm_calls == 0, repo.model_dump_json(indent=1)
    assert any(a.startswith("run: git clone git://127.0.0.1:") for a in repo.actions), repo.actions
    assert edit.verdict == "fail" and edit.llm_calls == 0, edit.model_dump_json(indent=1)
    assert "farewell" in edit.detail, edit.detail
    assert leftovers(run_id) == []  # each replay's own runtime is gone too


def test_a_read_only_workspace_fails_create_file_with_the_runtime_error(cells: dict[str, Ran[Any]]) -> None:
    # The app mounts this host folder read-only as the sandbox's workspace (SANDBOX_VOLUMES):
    # the runtime still connects, but nothing can be written where the agent works.
    r = cells[READ_ONLY_V1].value
    assert r.connect.verdict == "pass", r.connect.explain()
    [t] = [t for t in r.tasks if t.name == "create-file"]
    assert t.verdict == "fail"
    assert "not in the runtime" in t.detail and "Read-only file system" in t.detail, t
    assert any(e.startswith("runtime error:") and "Read-only" in e for e in t.evidence)
    assert t.llm_calls == 2  # the LLM was called: the action failed, not the model


def users_endpoint(client: docker.DockerClient, images: ImageSet, run_id: str) -> tuple[str, str]:
    """A stand-in for the user's own OpenAI-compatible endpoint (the scripted LLM), on the
    bridge gateway address only, where host-gateway cells reach it as host.docker.internal;
    labelled with `run_id`, so it is swept with it."""
    gateway = docker_host.bridge_gateway(client)
    assert gateway, "no default bridge gateway"
    port = free_port()
    # Serves any run of the V0 tasks: the task's nonce comes with its prompt.
    scripts = {f"{n} *": CATALOG[n].steps(Where(V0.workspace, llm.NONCE_SLOT)) for n in CATALOG}
    c = client.containers.run(images.app_image, ["python3", "-c", LLM_SOURCE, "--host", "0.0.0.0",
                                                 "--port", "8080"],
                              environment=llm_env(V0, scripts),
                              entrypoint=[], detach=True, name=f"oh-matrix-llm-{run_id[5:13]}",
                              labels=cleanup.labels(run_id), ports={"8080/tcp": (gateway, port)})
    return c.name, f"http://host.docker.internal:{port}/v1"


@dataclass
class RealLlm:
    canary: str
    out: Path
    proc: subprocess.CompletedProcess[str]
    seen: set[str | None]  # the key fingerprints the endpoint saw


def real_llm(client: docker.DockerClient, images: ImageSet, tmp_path: Path) -> Callable[[str], RealLlm]:
    """`oh-matrix run` of 0.62-host-gateway with a real LLM's settings (model, key, base URL):
    the key a canary, the endpoint the users_endpoint stand-in."""
    def cell(run_id: str) -> RealLlm:
        canary = "sk-canary-" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:24]
        name, base_url = users_endpoint(client, images, run_id)
        m = tmp_path / "m.toml"
        m.write_text('[run]\nbackend = "pypi"\ntasks = ["create-file", "run-command"]\n'
                     '[[targets]]\ntag = "0.62"\n[modes.host-gateway]\n')
        out = tmp_path / "out"
        env = {**os.environ, "LLM_MODEL": "openai/gpt-4o", "LLM_API_KEY": canary, "LLM_BASE_URL": base_url}
        p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(m), "--out", str(out),
                            "-n", "1", "-k", "create-file"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        _, rec = client.containers.get(name).exec_run(["cat", "/tmp/oh-matrix-llm.jsonl"])
        seen = {json.loads(line).get("key_sha256") for line in rec.decode().splitlines()}
        cleanup.sweep(client, run_id)  # the endpoint
        return RealLlm(canary, out, p, seen)
    return cell


def test_a_real_llm_key_reaches_the_model_and_no_file_or_output(cells: dict[str, Ran[Any]]) -> None:
    ran: RealLlm = cells["0.62-real-llm"].value
    canary, out, p = ran.canary, ran.out, ran.proc
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    [cell] = results["cells"]
    assert [(t["name"], t["verdict"]) for t in cell["tasks"]] == [("create-file", "pass")]  # -k chose the task
    assert "openai/gpt-4o" in " ".join(cell["notes"])
    # The key went through the app to the model: the endpoint saw it (as a fingerprint).
    assert hashlib.sha256(canary.encode()).hexdigest()[:12] in ran.seen
    # ... and nowhere the harness writes or prints.
    assert canary not in p.stdout + p.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert canary not in f.read_text(errors="replace"), f


def headless(images: ImageSet) -> Callable[[str], tuple[CellResult, CellResult]]:
    """The headless entry point in host-gateway, then in bridge, under one run id."""
    def cells(run_id: str) -> tuple[CellResult, CellResult]:
        def one(mode: str) -> CellResult:
            cell = Cell(Target(images.tag, "v0"), ModeChoice(mode), "headless")
            return run_cell(CellPlan(run_id, cell, images, {}, connect_budget=150, app_budget=150,
                                     tasks=["edit-file", "repo"], task_budget=120))
        return one("host-gateway"), one("bridge")
    return cells


@pytest.fixture(scope="module")
def cells(shared: Shared, client: docker.DockerClient, v0_images: ImageSet, v1_images: ImageSet,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ran[Any]]]:
    """Every cell of this module at once (the boots one at a time), with the session's."""
    with pytest.MonkeyPatch.context() as mp:
        tampered_recordings(mp)
        yield shared.run({**session_cells(v0_images, v1_images),
                          "0.62-replay": replayed(v0_images),
                          "0.62-real-llm": real_llm(client, v0_images, tmp_path_factory.mktemp("llm")),
                          "0.62-headless": headless(v0_images)})


def test_the_headless_entry_point_runs_tasks_and_is_diagnosed_like_the_api(cells: dict[str, Ran[Any]],
                                                                          leftovers: Leftovers) -> None:
    ran = cells["0.62-headless"]
    (ok, bad), run_id = ran.value, ran.run_id
    assert ok.connect.verdict == "pass", ok.connect.explain()
    # the two tasks whose runtime must be prepared (a seeded file, the git server) while the
    # process is already running
    assert [(t.name, t.verdict) for t in ok.tasks] == [("edit-file", "pass"), ("repo", "pass")], ok.tasks
    # the key by name, as docker passes it on from the caller's environment: never a value
    assert "openhands.core.main -t" in (ok.docker_run or "") and " -e LLM_API_KEY " in (ok.docker_run or "")
    assert ok.entrypoint == "headless" and ok.id.endswith("-headless")
    assert (bad.connect.verdict, bad.connect.cause) == ("fail", "dns-unresolved"), bad.connect.explain()
    assert bad.tasks == []  # the entry point never reached a runtime: no task ran
    assert leftovers(run_id) == []
