"""A small client for the airfleet service's public API (submit, change feed, workloads, logs, cancel)."""

from __future__ import annotations

import base64
import os
import ssl
import threading
from typing import Any
from urllib.parse import quote

from airfleet_airflow.config import AirfleetConfig


class AirfleetApiError(Exception):
    """The service answered with an error (its own code and message)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"airfleet service: {message} (HTTP {status} {code})")
        self.status = status
        self.code = code
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class AirfleetUnreachable(Exception):
    """The service could not be reached (refused, reset, timeout, TLS)."""


def _http_options(config: AirfleetConfig) -> dict[str, Any]:
    """What the sync and the async client both send: base URL, bearer token, timeout, TLS trust."""
    return {
        "base_url": config.url,
        "headers": {"authorization": f"Bearer {config.token}", "user-agent": "airfleet-airflow/0.1.0"},
        "timeout": config.request_timeout,
        "verify": tls_context(config.tls_ca),
    }


_contexts: dict[tuple[str | None, int], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(tls_ca: str | None) -> ssl.SSLContext:
    """The TLS context that trusts ``tls_ca`` (a PEM bundle) or, without one, certifi's CAs, as httpx would.

    Built once per bundle and shared by every client: loading a CA bundle takes 20-50 ms of CPU, and a
    triggerer that starts hundreds of deferred tasks' triggers at once would otherwise block its event loop
    that long per trigger. A bundle rewritten in place (a rotated CA) has a new mtime, so it is loaded again.
    """
    key = (tls_ca, os.stat(tls_ca).st_mtime_ns if tls_ca else 0)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            import certifi

            context = ssl.create_default_context(cafile=tls_ca or certifi.where())
            if tls_ca:
                for stale in [k for k in _contexts if k[0] == tls_ca]:
                    del _contexts[stale]
            _contexts[key] = context
        return context


def _answer(response: Any) -> Any:
    """The JSON body of a response, or the service's error (its code and message) as AirfleetApiError."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        raise AirfleetApiError(response.status_code, body.get("error", "http_error"),
                               body.get("message", f"HTTP {response.status_code}"), body.get("details"))
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _segment(id_or_key: str) -> str:
    """A workload id or key as one path segment (keys hold slashes)."""
    return quote(id_or_key, safe="")


def _events_params(after: int, limit: int, wait_ms: int, workload_id: str | None = None) -> dict[str, int | str]:
    params: dict[str, int | str] = {"after": after, "limit": limit, "waitMs": wait_ms}
    if workload_id is not None:
        params["workloadId"] = workload_id
    return params


FEED_PAGE = 1000


class _Connection:
    """The HTTP client of one service: httpx's sync client, or its async one for triggers."""

    def __init__(self, config: AirfleetConfig, *, asynchronous: bool):
        import httpx  # imported here: the executor module must import cheaply

        self._httpx = httpx
        self.url = config.url
        self._http = (httpx.AsyncClient if asynchronous else httpx.Client)(**_http_options(config))
        self._timeout = config.request_timeout


class AirfleetClient(_Connection):
    def __init__(self, config: AirfleetConfig):
        super().__init__(config, asynchronous=False)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                extra_timeout: float = 0.0) -> Any:
        try:
            response = self._http.request(
                method, path, json=json, params=params,
                timeout=self._timeout + extra_timeout if extra_timeout else self._httpx.USE_CLIENT_DEFAULT,
            )
        except self._httpx.HTTPError as e:
            raise AirfleetUnreachable(f"cannot reach the airfleet service at {self.url}: {e!r}") from e
        return _answer(response)

    def submit_batch(self, workloads: list[dict]) -> list[dict]:
        return self.request("POST", "/v1/workloads/batch", json={"workloads": workloads})["results"]

    def events(self, after: int, limit: int = 1000, wait_ms: int = 0) -> dict:
        return self.request("GET", "/v1/events", params=_events_params(after, limit, wait_ms),
                            extra_timeout=wait_ms / 1000)

    def feed_head(self) -> int:
        """The newest position of the change feed, found with a few small reads (no reading of history):
        probe upward for an empty page, halve the gap, then page over what is left."""
        lo, hi = 0, 1024
        while self.events(hi, limit=1)["events"]:
            if hi > 2**53:
                raise RuntimeError("the change feed answered events after every position; is the URL right?")
            lo, hi = hi, hi * 8
        while hi - lo > FEED_PAGE:
            mid = (lo + hi) // 2
            if self.events(mid, limit=1)["events"]:
                lo = mid
            else:
                hi = mid
        cursor = lo
        while True:
            page = self.events(cursor, limit=FEED_PAGE)
            cursor = int(page["last"])
            if len(page["events"]) < FEED_PAGE:
                return cursor

    def submit(self, workload: dict) -> dict:
        """One workload (idempotent by key: the same key answers the workload already stored)."""
        return self.request("POST", "/v1/workloads", json=workload)

    def workload(self, id_or_key: str) -> dict:
        return self.request("GET", f"/v1/workloads/{_segment(id_or_key)}")

    def cancel(self, id_or_key: str) -> dict:
        return self.request("POST", f"/v1/workloads/{_segment(id_or_key)}/cancel")

    def read_log(self, id_or_key: str, stream: str, *, attempt: int | None = None, max_bytes: int = 1 << 20,
                 limit_bytes: int | None = None) -> tuple[bytes, bool, int]:
        """Every byte of one stream of one attempt: (data, complete, next offset). Stops at ``limit_bytes``."""
        chunks: list[bytes] = []
        offset = 0
        complete = False
        while True:
            params: dict[str, Any] = {"stream": stream, "offset": offset, "maxBytes": max_bytes}
            if attempt is not None:
                params["attempt"] = attempt
            page = self.request("GET", f"/v1/workloads/{_segment(id_or_key)}/logs", params=params)
            data = base64.b64decode(page["data"])
            offset = page["nextOffset"]
            chunks.append(data)
            if page["complete"] or not data:
                complete = bool(page["complete"])
                break
            if limit_bytes is not None and offset >= limit_bytes:
                break
        return b"".join(chunks), complete, offset


class AsyncAirfleetClient(_Connection):
    """The calls a trigger makes, on asyncio (a triggerer runs many triggers on one event loop)."""

    def __init__(self, config: AirfleetConfig):
        super().__init__(config, asynchronous=True)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, params: dict | None = None, extra_timeout: float = 0.0) -> Any:
        try:
            response = await self._http.request(method, path, params=params, timeout=self._timeout + extra_timeout)
        except self._httpx.HTTPError as e:
            raise AirfleetUnreachable(f"cannot reach the airfleet service at {self.url}: {e!r}") from e
        return _answer(response)

    async def workload(self, id_or_key: str) -> dict:
        return await self.request("GET", f"/v1/workloads/{_segment(id_or_key)}")

    async def events(self, after: int, limit: int = FEED_PAGE, wait_ms: int = 0,
                     workload_id: str | None = None) -> dict:
        """The change feed after ``after``; with ``workload_id``, that workload's events alone."""
        return await self.request("GET", "/v1/events", params=_events_params(after, limit, wait_ms, workload_id),
                                  extra_timeout=wait_ms / 1000)

    async def cancel(self, id_or_key: str) -> dict:
        return await self.request("POST", f"/v1/workloads/{_segment(id_or_key)}/cancel")
