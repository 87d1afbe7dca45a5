"""AirfleetWorkloadTrigger: waits in Airflow's triggerer, not in a worker slot, until a workload has ended.

It reads the workload once, then long-polls the service's change feed for that workload alone
(``GET /v1/events?after=&waitMs=&workloadId=``) from the position the operator took before submitting, so
no change of the workload can slip by, and a triggerer holding many deferred tasks reads none of the others'
changes. An event, or a long poll that ends empty, makes it read the workload again; a terminal state ends
the wait. One request per ``wait_seconds`` while nothing happens.

The same coroutine (``wait_for_end``) serves the operator's non-deferrable mode, on the worker.

The event is not fired before ``not_before`` (wall-clock seconds, set by the operator when it defers): a
workload that ends within seconds of the deferral would otherwise resume the task before the scheduler has
read the executor's report of the deferring run, and Airflow 3.3 then fails the resumed run ("finished with
state success, but the task instance's state attribute is running"). executor/airflow/README.md
explains it ("Why a fast workload's task resumes 20 s after it deferred").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airfleet_airflow.client import FEED_PAGE, AirfleetApiError, AirfleetUnreachable, AsyncAirfleetClient
from airfleet_airflow.hooks import DEFAULT_CONN_ID, AirfleetConnectionError, aconfig_for

log = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")
# What execute_complete needs of a workload (the event is stored by Airflow; env and command stay out).
_KEPT = ("id", "key", "state", "attempt", "reason", "exitCode", "message", "workerName", "backend", "queue",
         "infraRetries", "startedAt", "finishedAt")
_MAX_BACKOFF = 30.0
# A not_before further away than this is a clock skew between worker and triggerer, not a settle time.
_MAX_SETTLE = 300.0


def summary(workload: dict[str, Any]) -> dict[str, Any]:
    return {k: workload.get(k) for k in _KEPT}


def explain(error: Exception, where: str) -> str:
    """What went wrong talking to the service, and what to fix."""
    if isinstance(error, AirfleetUnreachable):
        return f"{error}; check the URL in {where} and that the service is running"
    if isinstance(error, AirfleetApiError):
        if error.status == 401:
            return (f"the airfleet service refused the token of {where} (HTTP 401 {error.code}): set it to a valid "
                    "API token (`airfleet token create --scopes submit,read`)")
        if error.status == 403:
            return (f"the token of {where} lacks a scope (HTTP 403 {error.code}: {error}); the operator needs "
                    "scopes submit,read")
        field = ""
        if isinstance(error.details, dict) and error.details.get("field"):
            field = f" (field {error.details['field']})"
        return f"{error}{field}"
    return str(error)


async def wait_for_end(client: AsyncAirfleetClient, workload_id: str, after: int, wait_seconds: float,
                       where: str) -> dict[str, Any]:
    """The event that ends the wait: ``{"status": "ended", "workload": {...}}`` once the workload is terminal,
    ``{"status": "error", "message": ...}`` when the service refuses (token, missing workload). An unreachable
    or overloaded service is retried with backoff: the task's own timeouts bound the wait."""
    backoff = 1.0
    wait_ms = int(wait_seconds * 1000)
    while True:
        try:
            workload = await client.workload(workload_id)
            if workload["state"] in TERMINAL:
                return {"status": "ended", "workload": summary(workload)}
            # Until the workload changes, or the long poll ends with nothing: read it again either way.
            page = await client.events(after, limit=FEED_PAGE, wait_ms=wait_ms, workload_id=workload["id"])
            after = int(page["last"])
            backoff = 1.0
        except (AirfleetUnreachable, AirfleetApiError) as e:
            if isinstance(e, AirfleetApiError) and not e.retryable:
                return {"status": "error", "message": f"airfleet: waiting for workload {workload_id}: "
                                                      f"{explain(e, where)}"}
            log.warning("airfleet: waiting for workload %s: %s; retrying in %.0f s", workload_id,
                        explain(e, where), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


class AirfleetWorkloadTrigger(BaseTrigger):
    """Fires once, when the airfleet workload ``workload_id`` has succeeded, failed or been cancelled."""

    def __init__(self, workload_id: str, airfleet_conn_id: str = DEFAULT_CONN_ID, after: int = 0,
                 wait_seconds: float = 30.0, not_before: float = 0.0):
        super().__init__()
        self.workload_id = workload_id
        self.airfleet_conn_id = airfleet_conn_id
        self.after = int(after)
        self.wait_seconds = float(wait_seconds)
        self.not_before = float(not_before)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"workload_id": self.workload_id, "airfleet_conn_id": self.airfleet_conn_id, "after": self.after,
                 "wait_seconds": self.wait_seconds, "not_before": self.not_before})

    async def _settle(self) -> None:
        """Holds the event until not_before (see the module docstring)."""
        remaining = min(self.not_before - time.time(), _MAX_SETTLE)
        if remaining > 0:
            log.info("airfleet: workload %s has ended; the task resumes in %.1f s, when the scheduler has had "
                     "time to see the deferring run exit (the operator's min_deferral_seconds)", self.workload_id,
                     remaining)
            await asyncio.sleep(remaining)

    @property
    def _where(self) -> str:
        return f"the Airflow connection `{self.airfleet_conn_id}`"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            config = await aconfig_for(self.airfleet_conn_id)
        except AirfleetConnectionError as e:
            yield TriggerEvent({"status": "error", "message": f"airfleet: {e}"})
            return
        client = AsyncAirfleetClient(config)
        try:
            event = await wait_for_end(client, self.workload_id, self.after, self.wait_seconds, self._where)
        finally:
            await client.close()
        await self._settle()
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """The deferred task was marked failed or success, or cleared, by a user: cancel the workload."""
        config = await aconfig_for(self.airfleet_conn_id)
        client = AsyncAirfleetClient(config)
        try:
            await client.cancel(self.workload_id)
            log.info("airfleet: cancelled workload %s (the task was stopped by a user)", self.workload_id)
        except AirfleetApiError as e:
            if e.status != 409:  # 409: it had ended already
                raise
        finally:
            await client.close()
