"""The `native` mode's cell: Agent Canvas as `npx @openhands/agent-canvas@V` runs it, on this
machine, no container. Its launcher (`bin/agent-canvas.mjs`) starts the agent-server and the
automation server with `uvx` (each pinned at the release's version, everything under them
resolved by uv today), waits up to 60 s for the agent-server, then starts the static server
and the ingress on `--port`.

The cell runs that launcher as a person does (the install is made once per version by the
images step: images/canvas.py native_install), with HOME a folder of the cell's own (never
the user's ~/.openhands), the ingress on a free port, and the launcher's fixed ports
(agent-server, automation, static server) held by the host-port lock for the boot. Every
process it starts is marked (harness/host/processes.py) and ended with the cell, whole
process groups.

The verdict comes from what the launcher and its services say and do:
- the launcher's `[agent-server] Exited with code N` (its own line when a service dies):
  `fail agent-server-exited` at once, the exception the agent-server died of quoted from its
  output, and what uvx installed for it read from the environment its traceback names; then,
  as the person's view, what the ingress answers once the launcher has started it;
- the launcher itself exiting: `fail app-exited` with its last lines;
- the ingress's `/ready` answering 200: the API is up; the stack's key is read from
  `$HOME/.openhands/agent-canvas/api-key.txt` (where the launcher keeps the key it
  generated), a conversation is created through the Canvas adapter, and the cell passes once
  the agent-server holds it;
- none of these within the app budget: `fail budget-exceeded`.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from harness.cells.boot import BootClock
from harness.cells.cell import CellCore
from harness.cells.plan import NO_LLM
from harness.errors import AdapterError
from harness.host import cleanup, processes
from harness.host.containers import free_port
from harness.model import Cause, Connect, Evidence, Source, Verdict
from harness.openhands import Authenticates, Client, KeepsKey, client_for, rules_for
from harness.secrets import remember

PACKAGE = "@openhands/agent-canvas"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SERVICE_LINE = re.compile(r"^(?:\d\d:\d\d:\d\d )?\[(?P<name>[\w-]+)\] ?(?P<text>.*)$")
EXITED = re.compile(r"^Exited with code (-?\d+)")
EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
FRAME = re.compile(r'^File "(?P<file>[^"]+)", line (?P<line>\d+)')
# What a person's environment passes on to the launcher: locale, proxies, this machine's CA
# bundle and package index settings. Nothing of the harness's own.
PASSED = ("LANG", "LANGUAGE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
          "CURL_CA_BUNDLE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_NATIVE_TLS",
          "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "NPM_CONFIG_REGISTRY")
# What a person has on PATH to run it (the install's paths by name): node, uv, uvx, python3.
PATH_TOOLS = {"node": "node", "uv": "uv", "uvx": "uvx", "python3": "python", "python3.12": "python"}
LOOK = 0.5  # seconds between looks at the launcher
INGRESS_AFTER_DEATH = 90.0  # the launcher waits 60 s for the agent-server before it starts the ingress


@dataclass(frozen=True)
class LauncherLog:
    """The launcher's output, ANSI stripped: its own lines and its services', each service's
    prefixed `[name]` as the launcher prints them."""

    lines: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> LauncherLog:
        return cls(tuple(ANSI.sub("", ln).rstrip() for ln in text.splitlines()))

    @classmethod
    def read(cls, path: Path) -> LauncherLog:
        try:
            return cls.of(path.read_text(errors="replace"))
        except OSError:
            return cls(())

    def service(self, name: str) -> list[str]:
        """What the launcher printed under `[name]`, without the time and the prefix."""
        return [m.group("text").strip() for ln in self.lines if (m := SERVICE_LINE.match(ln))
                and m.group("name") == name]

    def line(self, name: str, text: str) -> str | None:
        """The first line of `[name]` that starts with `text`, as printed (time stripped)."""
        return next((f"[{name}] {t}" for t in self.service(name) if t.startswith(text)), None)

    def exited(self, name: str) -> int | None:
        """The exit code the launcher reports for a service of its that died."""
        return next((int(m.group(1)) for t in self.service(name) if (m := EXITED.match(t))), None)

    def exception(self, name: str) -> str | None:
        """The last exception line a service printed (a Python traceback's last line)."""
        return next((t for t in reversed(self.service(name)) if EXCEPTION.match(t)), None)

    def frame(self, name: str) -> tuple[str, int, str] | None:
        """The traceback's last frame before the exception: (file, line, its code)."""
        texts = self.service(name)
        for i in range(len(texts) - 1, -1, -1):
            if m := FRAME.match(texts[i]):
                code = texts[i + 1] if i + 1 < len(texts) and not FRAME.match(texts[i + 1]) else ""
                return m.group("file"), int(m.group("line")), code
        return None

    def tail(self, n: int = 6) -> list[str]:
        return [ln for ln in self.lines if ln.strip()][-n:]


def site_packages(file: str) -> Path | None:
    """The site-packages folder a traceback's file is in (uvx's environment for the tool)."""
    parts = Path(file).parts
    return Path(*parts[:parts.index("site-packages") + 1]) if "site-packages" in parts else None


def installed(site: Path, names: tuple[str, ...] = ("fastapi", "starlette", "pydantic", "openhands_sdk",
                                                    "openhands_agent_server")) -> dict[str, str]:
    """The versions of `names` an environment holds, from its *.dist-info folders."""
    out = {}
    for info in sorted(site.glob("*.dist-info")) if site.is_dir() else ():
        name, _, version = info.name[:-len(".dist-info")].partition("-")
        if name.lower() in names:
            out[name.lower().replace("_", "-")] = version
    return out


def person_line(version: str, env: dict[str, str]) -> str:
    """The command a person types: the settings they give, then npx."""
    settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return (settings + " " if settings else "") + f"npx {PACKAGE}@{version}"


def person_env(plan_env: dict[str, str]) -> dict[str, str]:
    """The settings of the person's line: the matrix's, the mode's and a remedy's."""
    return {k: v for k, v in plan_env.items() if not k.startswith("OH_MATRIX_")}


def launcher_env(home: Path, bin_dir: Path, plan_env: dict[str, str],
                 outer: dict[str, str] | None = None) -> dict[str, str]:
    """The launcher's environment: what a person's shell passes on (PASSED, proxies), HOME the
    cell's own, PATH with node, uv, uvx and python3 first, and the cell's settings."""
    outer = dict(os.environ if outer is None else outer)
    passed = {k: v for k, v in outer.items() if k in PASSED or k.lower() in ("http_proxy", "https_proxy",
                                                                            "no_proxy", "all_proxy")}
    return {**passed, "HOME": str(home), "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", **plan_env}


class NativeCell(CellCore):
    """The launcher on this machine, its agent-server judged by what it does."""

    def body(self) -> None:
        p, images = self.plan, self.plan.images
        self.result.app_image = self.result.runtime_image = None
        if p.gen.native_install is None:
            self.result.connect = Connect(verdict=Verdict.SKIP, reason=(
                f"the native mode is Agent Canvas's npx launcher; {p.cell.target.tag} is {p.gen.title}, which has "
                "no native install"))
            return
        version = images.resolved_version
        self.result.docker_run = person_line(version, person_env(p.env))
        if images.native_error or not images.native:
            self.error(Cause.IMAGE_UNAVAILABLE, images.native_error or "the native install was not prepared")
            return
        install = images.native
        self.result.notes.append(f"no container: {PACKAGE} {version} installed as npx installs it, run by its "
                                 f"launcher with Node {install['node_version']} on this machine; uvx "
                                 f"({install['uvx']}) and CPython 3.12 ({install['python']}) on its PATH")
        if p.tasks:
            self.result.notes.append("tasks: not run by the native cell (the scripted LLM and the task checks "
                                     "run in containers)")
        with self.booting() as clock:
            self.run_launcher(install, clock)

    def run_launcher(self, install: dict[str, str], clock: BootClock) -> None:
        p = self.plan
        site = Path(self.resources.scratch("native"))
        home, bin_dir, log = site / "home", site / "bin", site / "launcher.log"
        home.mkdir()
        bin_dir.mkdir()
        for name, key in PATH_TOOLS.items():
            (bin_dir / name).symlink_to(install[key])
        port = free_port()
        self.result.notes.append(f"placed: the ingress on port {port} (`--port {port}`; a person's default is "
                                 f"8000), HOME {home} (a folder of the cell's own, not ~/.openhands)")
        env = launcher_env(home, bin_dir, p.env)
        argv = [str(bin_dir / "node"), install["launcher"], "--port", str(port)]
        self.app.app_env = {"HOME": str(home)}
        t0 = time.monotonic()
        launcher = self.resources.stack.enter_context(
            processes.started(argv, env, home, log, cleanup.owner(), p.run_id, p.cell.id))
        self.app.phase(f"launcher started: {self.result.docker_run} (ingress on {port})")
        url = f"http://127.0.0.1:{port}"
        client = client_for(replace(self.gen, workspace=str(home / "projects")), url)
        self.resources.on_close(client.close)
        while True:
            elapsed = time.monotonic() - t0
            said = LauncherLog.read(log)
            if (code := said.exited("agent-server")) is not None:
                self.agent_server_died(said, code, elapsed, log, url, t0, launcher)
                return
            if (code := launcher.poll()) is not None:
                self.finish(Verdict.FAIL, Cause.APP_EXITED, elapsed, [
                    f"the launcher ({self.result.docker_run}) exited with code {code} before its ingress answered",
                    *said.tail()])
                return
            if client.healthy():
                self.result.app_seconds = round(elapsed, 1)
                self.app.phase(f"ingress and agent-server up after {elapsed:.1f} s")
                self.connect(client, home, t0)
                return
            if elapsed > p.app_budget:
                self.finish(Verdict.FAIL, Cause.BUDGET_EXCEEDED, elapsed, [
                    f"the ingress at {url}/ready did not answer 200 within {p.app_budget:.0f} s of the launcher's "
                    "start, and no service of it exited", *said.tail()])
                return
            time.sleep(LOOK)

    def agent_server_died(self, said: LauncherLog, code: int, elapsed: float, log: Path, url: str, t0: float,
                          launcher: object) -> None:
        """The agent-server exited: decided now; then what a person at the ingress sees."""
        exception = said.exception("agent-server")
        frame = said.frame("agent-server")
        why = (f"the agent-server exited at start with code {code}, {elapsed:.1f} s after the launcher began, before "
               f"it answered: " + (f"`{exception}`" if exception else "it printed no exception"))
        if frame:
            at = frame[0].split("site-packages/")[-1]
            why += f" (at {at} line {frame[1]}" + (f": `{frame[2]}`" if frame[2] else "") + ")"
        self.app.phase(f"connect: fail agent-server-exited after {elapsed:.1f} s ({exception or code})")
        lines = [why]
        launcher_said = [ln for ln in (said.line("agent-server", "Using "), said.line("agent-server", "Exited with"))
                         if ln]
        if frame and (where := site_packages(frame[0])) and (held := installed(where)):
            lines.append("uvx's environment for the agent-server holds " +
                         ", ".join(f"{k} {v}" for k, v in held.items()) + f" ({where})")
        ingress = self.ingress_view(log, url, t0, launcher)
        evidence = [Evidence(source=Source.HARNESS, text=lines[0])]
        if ingress:
            evidence.append(Evidence(source=Source.PROBE, text=ingress))
        evidence += [Evidence(source=Source.APP_LOG, text=ln) for ln in (*lines[1:], *launcher_said)]
        waited = LauncherLog.read(log).line("agent-server", "Timeout waiting")
        if waited:
            evidence.append(Evidence(source=Source.APP_LOG, text=waited))
        self.result.connect = Connect(verdict=Verdict.FAIL, cause=Cause.AGENT_SERVER_EXITED, seconds=round(elapsed, 1),
                                      evidence=evidence)

    def ingress_view(self, log: Path, url: str, t0: float, launcher: object) -> str | None:
        """What the ingress answers at /ready once the launcher has started it (after its own
        wait for the agent-server), in the person's words; None when it never listened."""
        deadline = t0 + max(INGRESS_AFTER_DEATH, 0.0)
        while time.monotonic() < deadline:
            if LauncherLog.read(log).line("ingress", "Starting on port"):
                try:
                    answer = httpx.get(f"{url}/ready", timeout=5.0)
                except httpx.HTTPError:
                    time.sleep(LOOK)
                    continue
                return (f"the ingress at {url}/ready, where a person's browser goes, answered {answer.status_code} "
                        f"`{answer.text.strip()[:200]}`, {time.monotonic() - t0:.0f} s after the launcher began "
                        "(the launcher starts it once its wait for the agent-server is over)")
            if getattr(launcher, "poll", lambda: None)() is not None:
                return None
            time.sleep(LOOK)
        return None

    def connect(self, client: Client, home: Path, t0: float) -> None:
        """The API is up: the launcher's key, a conversation, the agent-server holding it."""
        rules = rules_for(self.gen)
        key = rules.session_key({"HOME": str(home)}, _read) if isinstance(rules, KeepsKey) else None
        if key is None or not isinstance(client, Authenticates):
            self.finish(Verdict.FAIL, Cause.API_ERROR, time.monotonic() - t0, [
                f"the ingress answers, but the launcher kept no key in {home}/.openhands/agent-canvas/api-key.txt"])
            return
        remember("LOCAL_BACKEND_API_KEY", key)
        client.authenticate(key)
        try:
            client.store_settings(NO_LLM)
            self.conversation_at = time.time()
            conversation = client.create_conversation(self.plan.message)
            deadline = time.monotonic() + self.plan.connect_budget
            while True:
                state = client.runtime_state(conversation)
                if state.ready or state.error or time.monotonic() > deadline:
                    break
                time.sleep(LOOK)
        except AdapterError as e:
            self.finish(Verdict.FAIL, Cause.API_ERROR, time.monotonic() - t0, [str(e)[:400]])
            return
        if state.ready:
            self.finish(Verdict.PASS, None, time.monotonic() - t0, [
                f"conversation {conversation} created through the ingress; the agent-server holds it "
                f"({state.status}); its agent runs in the agent-server's own process on this machine"])
        else:
            self.finish(Verdict.FAIL, Cause.API_ERROR, time.monotonic() - t0,
                        [f"conversation {conversation}: {state.error or state.status}"])

    def finish(self, verdict: Verdict, cause: Cause | None, seconds: float, lines: list[str]) -> None:
        self.app.phase(f"connect: {verdict}{' ' + cause if cause else ''} after {seconds:.1f} s")
        self.result.connect = Connect(verdict=verdict, cause=cause, seconds=round(seconds, 1), evidence=[
            Evidence(source=Source.HARNESS if i == 0 else Source.APP_LOG, text=ln) for i, ln in enumerate(lines)])


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None
