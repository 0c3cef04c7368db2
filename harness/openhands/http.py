"""The harness's HTTP client for an app's API, shared by the adapters: the one place where
httpx's errors become the harness's (AdapterError: ApiError or AppUnreachable)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from harness.errors import ApiError, AppUnreachable


class AppClient:
    def __init__(self, base_url: str, timeout: float, headers: dict[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        # trust_env=False: the harness's own proxy variables must not sit between it and
        # an app published on this machine. `transport`: where the requests really go from
        # (a caller's container: cells/caller.py), else this process.
        self._http = httpx.Client(base_url=base_url, timeout=timeout, trust_env=False, headers=headers,
                                  transport=transport)

    @property
    def headers(self) -> httpx.Headers:
        """What every request sends (a key learnt after the client was made goes here)."""
        return self._http.headers

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise AppUnreachable(f"{method} {self._http.base_url}{path}: {type(e).__name__}: {e}") from None

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """JSON of a 2xx/3xx answer; anything else is an ApiError with status and body."""
        resp = self.request(method, path, **kw)
        if resp.status_code >= 400:
            raise ApiError(method, path, resp.status_code, resp.text)
        try:
            return resp.json()
        except ValueError:
            raise ApiError(method, path, resp.status_code, f"not JSON: {resp.text[:200]}") from None

    def answers(self, path: str) -> bool:
        """Whether anything but a server error comes back (the API is up)."""
        try:
            return self.request("GET", path, timeout=3).status_code < 500
        except AppUnreachable:
            return False

    def close(self) -> None:
        self._http.close()


def socket_call(base_url: str, query: dict[str, str], event: str, data: dict[str, Any], timeout: float) -> None:
    """Emit `event` on an app's socket.io endpoint (`/socket.io`, with `query` on the connect)
    and wait for its acknowledgement: the server acknowledges once its handler has run. Long
    polling over a session that ignores the harness's proxy variables, as AppClient does;
    socket.io's errors become AppUnreachable."""
    import requests
    import socketio
    from socketio.exceptions import SocketIOError

    session = requests.Session()
    session.trust_env = False
    # handle_sigint=False: Ctrl-C stays the harness's (cells/runner.py), not the client's
    sio = socketio.SimpleClient(handle_sigint=False, http_session=session, request_timeout=timeout)
    url = f"{base_url.rstrip('/')}/?{urlencode(query)}"
    try:
        sio.connect(url, transports=["polling"], wait_timeout=timeout)
        sio.call(event, data, timeout=timeout)
    except (SocketIOError, OSError) as e:
        raise AppUnreachable(f"socket.io {event} at {url}: {type(e).__name__}: {e}") from None
    finally:
        sio.disconnect()
        session.close()
