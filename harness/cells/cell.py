"""One cell, start to end: start the app in its mode, wait for its API, watch the runtime
come up (or not) on the harness's own clock, decide, run the tasks if it connected, and
remove everything the cell made.

A cell is put together from parts, each in a module of its own: the app and its runtimes
(launch.py), the machine's share of the boot (boot.py), the watch (watch.py, with the
Judge of diagnosis.py), the evidence (evidence.py). `CellCore` holds them and the result;
the entry points drive them: `ApiCell` (api.py) the app's API, `HeadlessCell` (headless.py)
V0's CLI entry point; runner.py picks one per cell.
"""

from __future__ import annotations

import contextlib

import docker

from harness.cells import evidence
from harness.cells.boot import BootClock, boot
from harness.cells.diagnosis import Decision, Observation, unmasked
from harness.cells.launch import AppLauncher
from harness.cells.plan import CellPlan
from harness.cells.watch import FirewallView, Watch, watch_connect
from harness.errors import PlacementError
from harness.host import cleanup, docker_host
from harness.host.containers import CellResources, tail
from harness.model import Cause, CellResult, Connect, Evidence, Source, Verdict, strip_ansi
from harness.openhands import docker_failure


def daemon_lost(why: str, before: Connect | None = None) -> Connect:
    """The cell the daemon took down: an error naming it (no look at the daemon: it is gone);
    what the cell had decided before, if anything, said after."""
    evidence = [Evidence(source=Source.HARNESS, text=f"{why}; what this cell made is removed by the sweep once "
                                                     "the daemon answers again")]
    if before is not None and before.verdict != Verdict.SKIP:
        evidence.append(Evidence(source=Source.HARNESS, text=f"before, the cell was decided {before.verdict}"
                                                             + (f" {before.cause}" if before.cause else "")))
    return Connect(verdict=Verdict.ERROR, cause=Cause.DAEMON_LOST, evidence=evidence)


class CellCore:
    """The parts every entry point shares, and the result they fill."""

    def __init__(self, plan: CellPlan) -> None:
        self.plan = plan
        self.gen = plan.gen
        self.client = docker_host.client()
        name = f"{cleanup.name_prefix(plan.run_id)}-{plan.cell.id}".replace(".", "_")
        self.resources = CellResources(self.client, cleanup.labels(plan.run_id, plan.cell.id), name)
        self.result = CellResult(
            id=plan.cell.id, tag=plan.cell.target.tag, mode=plan.cell.mode.name, api=plan.images.api,
            connect=Connect(verdict=Verdict.SKIP, reason="not run"), entrypoint=plan.cell.entrypoint,
            resolved_version=plan.images.resolved_version, backend=plan.images.backend,
            app_image=plan.images.app_image, runtime_image=plan.images.runtime_image,
            deployment=plan.cell.mode.deployment.origin if plan.cell.mode.deployment else None,
        )
        self.app = AppLauncher(plan, self.result, self.client, self.resources)
        self.firewall = FirewallView(self.client)
        self.conversation_at = 0.0  # epoch seconds: when the conversation (or process) began

    def booting(self) -> contextlib.AbstractContextManager[BootClock]:
        return boot(self.app, self.resources.stack)

    def watch(self, watch: Watch, app: docker.models.containers.Container, clock: BootClock) -> None:
        """Watch the runtime come up and decide its connect verdict."""
        watched = watch_connect(watch, app, self.firewall, self.plan.connect_budget, self.app.phase,
                                self.app.daemon)
        clock.answered_at = watched.answered_at
        self.result.connect.runtime_url = watched.runtime_url
        self.decide(watched.decision, watched.seconds, app, watched.last, watch)

    def decide(self, d: Decision, seconds: float | None, app: docker.models.containers.Container | None = None,
               obs: Observation | None = None, watch: Watch | None = None) -> None:
        line = docker_failure(strip_ansi(tail(app, 400))) if app is not None and d.verdict == Verdict.FAIL else None
        d = unmasked(d, line, self.app.daemon)
        facts = evidence.gather(self.client, d, watch, app, self.conversation_at or None, obs)
        shown = evidence.evidence(d, obs, facts)
        if d.cause == Cause.DOCKER_UNREACHABLE and line:
            shown.insert(1, Evidence(source=Source.APP_LOG, text=line))  # its own words, quoted apart
        if d.verdict == Verdict.PASS and watch is not None and app is not None:
            note = evidence.network_note(app, watch.runtime(), self.result.connect.runtime_url)
            if note:
                self.result.notes.append(note)
        after = f" after {seconds:.1f} s" if seconds is not None else ""
        self.app.phase(f"connect: {d.verdict}{' ' + d.cause if d.cause else ''}{after}"
                       + (f" ({d.why[:120]})" if d.verdict != Verdict.PASS else ""))
        self.result.connect = Connect(verdict=d.verdict, cause=d.cause,
                                      seconds=round(seconds, 1) if seconds is not None else None,
                                      runtime_url=self.result.connect.runtime_url, evidence=shown,
                                      direction=d.direction, rerun=d.rerun)

    def error(self, cause: Cause, why: str) -> None:
        self.decide(Decision(Verdict.ERROR, cause, why), None)

    def run(self) -> CellResult:
        try:
            with self.resources:  # its teardown against a daemon that is gone raises too: caught below
                self.body()
        except docker.errors.ImageNotFound as e:
            self.error(Cause.IMAGE_UNAVAILABLE, str(e)[:300])
        except PlacementError as e:  # the deployment cannot run here as written without touching the user's
            self.error(Cause.HARNESS_ERROR, str(e))
        except Exception as e:
            if (why := docker_host.lost(e)) is None and not isinstance(e, docker.errors.DockerException):
                raise  # a bug of the harness's: runner.run_one names it
            if why is None:
                self.error(Cause.HARNESS_ERROR, f"Docker: {str(e)[:300]}")
            else:
                self.result.connect = daemon_lost(why, self.result.connect)
        return self.result

    def body(self) -> None:
        raise NotImplementedError
