"""A real LLM that cannot be used is a cause, decided in seconds, not a task that runs out its
budget while OpenHands retries with backoff (5 attempts, 8 to 64 s apart, in both
generations). The proof comes the way the runtime's does: the endpoint probed from the
namespace of the container that calls it (V0: the app; V1: the sandbox), and the agent's own
errors, which name an authentication or model error at once (OpenHands does not retry those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from docker.models.containers import Container

from harness.host.containers import tail
from harness.host.netprobe import NetProbe
from harness.host.probes import probe_from
from harness.model import Cause, strip_ansi
from harness.openhands import Turn

UNREACHABLE_TO_DECIDE = 2  # consecutive failed probes, with the agent showing no step meanwhile
DEFAULT_ENDPOINT = "https://api.openai.com/v1"  # litellm's, when no base URL is set
# How litellm's exceptions name themselves in the agent's errors (V0 error observations, V1
# ConversationErrorEvent code/detail).
_AUTH = re.compile(r"AuthenticationError|Incorrect API key|invalid[_ ]api[_ ]key|\b401\b", re.I)
_MODEL = re.compile(r"NotFoundError|model .{0,40}(?:not found|does not exist)|Unknown model|"
                    r"LLM Provider NOT provided", re.I)
# The retry line both generations log: "<exc>. Attempt #N | You can customize retry values ..."
_RETRY = re.compile(r"^.*Attempt #\d+.*$", re.M)


@dataclass
class LlmWatch:
    caller: Container  # the container whose namespace calls the LLM
    base_url: str
    log_of: Container | None = None  # where OpenHands logs its retries (V0: the app; V1: the sandbox)
    failed_probes: int = 0
    last: NetProbe | None = field(default=None)

    def endpoint(self) -> tuple[str, int]:
        u = urlparse(self.base_url or DEFAULT_ENDPOINT)
        return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)

    def check(self, turn: Turn | None) -> tuple[Cause, list[str]] | None:
        """A cause, with its evidence, once the LLM is shown unusable; None while it may work."""
        errors = "\n".join(turn.errors) if turn else ""
        if _AUTH.search(errors):
            return Cause.LLM_AUTH, [f"the agent's error: {errors.strip()[:300]}"]
        if _MODEL.search(errors):
            return Cause.LLM_MODEL, [f"the agent's error: {errors.strip()[:300]}"]
        if turn is not None and turn.actions:
            self.failed_probes = 0  # the model answered at least once this turn
            return None
        host, port = self.endpoint()
        self.last = probe_from(self.caller, f"{self.caller.name} (calls the LLM)", host, port, "/")
        bad = self.last.dns != "ok" or self.last.tcp in ("refused", "timeout", "error")
        self.failed_probes = self.failed_probes + 1 if bad else 0
        if self.failed_probes < UNREACHABLE_TO_DECIDE:
            return None
        evidence = [self.last.line()]
        retries = _RETRY.findall(strip_ansi(tail(self.log_of, 200))) if self.log_of is not None else []
        evidence += [f"OpenHands retries: {line.strip()[:200]}" for line in retries[-2:]]
        return Cause.LLM_UNREACHABLE, evidence
