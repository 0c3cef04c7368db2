"""The harness's HTTP client for an app's API, shared by the adapters."""

from __future__ import annotations

from typing import Any

import httpx

from harness.errors import ApiError


class AppClient:
    def __init__(self, base_url: str, timeout: float) -> None:
        # trust_env=False: the harness's own proxy variables must not sit between it and
        # an app published on this machine.
        self._http = httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """JSON of a 2xx/3xx answer; anything else is an ApiError with status and body."""
        resp = self._http.request(method, path, **kw)
        if resp.status_code >= 400:
            raise ApiError(method, path, resp.status_code, resp.text)
        return resp.json()

    def close(self) -> None:
        self._http.close()
