"""AirfleetExecutor: Airflow 3 hands it ExecuteTask workloads; the airfleet service runs them.

The scheduler calls ``heartbeat()`` every loop; that calls ``_process_workloads`` with what was queued
(one batch request) and ``sync()`` (one change-feed request). Nothing here may raise out of a heartbeat:
failures are logged and retried on the next one.

Two facts of Airflow 3.3 shape it:
- a SUCCESS or FAILED event for a TI that is still queued or running with the same try makes the scheduler
  fail it as "killed externally", so an outcome is reported only once the service says the attempt ended
  (a pool worker reports the end after the task process exited);
- nothing in core fills ``self.running``: this executor moves keys from ``queued_tasks`` to ``running``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from airflow.executors.base_executor import BaseExecutor

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey

    from airfleet_airflow.client import AirfleetClient
    from airfleet_airflow.config import AirfleetConfig

# Reasons the service gives for failures of the infrastructure rather than of the task.
INFRA_REASONS = {"unschedulable", "image_pull", "driver", "oom", "lost", "preempted", "submit_error"}
# Exit code of airfleet_airflow.run when the workload token had expired before the task could start.
TOKEN_EXPIRED_EXIT = 75
_FEED_PAGE = 1000
_BATCH = 1000


@dataclass
class _Tracked:
    key: TaskInstanceKey
    workload_id: str
    submitted: float = field(default_factory=time.monotonic)
    started: bool = False


class AirfleetExecutor(BaseExecutor):
    """Runs Airflow tasks on the airfleet service's backends: pull-worker pools, local, Nomad, AWS Batch."""

    supports_ad_hoc_ti_run = False
    is_local = False
    serve_logs = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config: AirfleetConfig | None = None
        self._client: AirfleetClient | None = None
        self._cursor: int | None = None
        self._by_workload: dict[str, _Tracked] = {}
        self._by_key: dict[TaskInstanceKey, str] = {}
        self._verify: set[str] = set()  # adopted while the service was unreachable: check they exist
        self._deferred: list[dict] = []  # terminal events held back one heartbeat (see _deliver)
        self._retry_at = 0.0
        self._backoff = 1.0
        self._warned: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle

    def _setup(self) -> AirfleetClient:
        if self._client is None:
            from airfleet_airflow.client import AirfleetClient
            from airfleet_airflow.config import load_airflow_config

            self._config = load_airflow_config(self.conf)
            self._client = AirfleetClient(self._config)
        return self._client

    def start(self) -> None:
        """Validates ``[airfleet]`` (a bad section stops the scheduler with every problem named) and finds
        the head of the change feed, so only changes from now on are read."""
        self._setup()
        try:
            self._cursor = self._client.feed_head()
            self.log.info("airfleet: following %s from change-feed position %d", self._client.url, self._cursor)
        except Exception as e:
            self._warn("start", "airfleet: the service at %s is not answering (%s); will retry every heartbeat",
                       self._client.url, e)

    def end(self) -> None:
        """The scheduler is stopping: tasks keep running in airfleet, and the next scheduler adopts them.

        Adoption needs each TI's ``external_executor_id``, which the scheduler writes only when it reads this
        executor's RUNNING event. A stop (SIGTERM ends the loop wherever it is) can come after tasks were set
        queued but before they were submitted, or after the submit but before the scheduler committed what it
        read of the events: the next scheduler would reset those tasks and run them under a new try (and their
        first workloads would fail on Airflow's 409). So what is still queued is submitted now (the service
        dedupes a repeated submit by key), and every tracked task's workload id the database lacks is written
        to it here.
        """
        try:
            if self.queued_tasks:
                self._process_workloads(list(self.queued_tasks.values()))
            self._record_workload_ids()
        except Exception as e:  # noqa: BLE001 - the scheduler is exiting: say what the next one will do
            self.log.warning("airfleet: handing tasks over to the next scheduler failed (%s); it will reset "
                             "the tasks it cannot adopt", e)
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _record_workload_ids(self) -> None:
        """Writes the workload id of every task this executor tracks to its TI, where the TI has none yet.

        Not only the RUNNING events still in the event buffer: the scheduler's ``process_executor_events``
        takes the whole buffer first (``get_event_buffer`` empties it) and commits the ids at the end of its
        loop, so a SIGTERM in between leaves tasks whose events were read but whose ids never reached the
        database. The update fills the ``external_executor_id`` of a queued or running TI of the same try when
        it is empty, or when it is still the id of an earlier try: Airflow keeps a retried TI's id until the
        scheduler writes the next one (only a reset clears it), and the earlier try's id is in
        ``task_instance_history``. Any other id (one the scheduler did write) is left alone.
        """
        from airflow.utils.state import TaskInstanceState

        tracked = [{"d": t.key.dag_id, "t": t.key.task_id, "r": t.key.run_id, "m": t.key.map_index,
                    "n": t.key.try_number, "w": workload_id} for workload_id, t in self._by_workload.items()]
        if not tracked:
            return
        from airflow import settings
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from sqlalchemy import bindparam, or_, select, update

        table = TaskInstance.__table__
        history = TaskInstanceHistory.__table__
        earlier_tries = (
            select(history.c.external_executor_id)
            .where(history.c.dag_id == bindparam("d"), history.c.task_id == bindparam("t"),
                   history.c.run_id == bindparam("r"), history.c.map_index == bindparam("m"),
                   history.c.try_number < bindparam("n"), history.c.external_executor_id.is_not(None)))
        statement = (
            update(table)
            .where(table.c.dag_id == bindparam("d"), table.c.task_id == bindparam("t"),
                   table.c.run_id == bindparam("r"), table.c.map_index == bindparam("m"),
                   table.c.try_number == bindparam("n"),
                   or_(table.c.external_executor_id.is_(None), table.c.external_executor_id.in_(earlier_tries)),
                   # or_, not in_: an expanding IN cannot go with executemany
                   or_(table.c.state == TaskInstanceState.QUEUED.value,
                       table.c.state == TaskInstanceState.RUNNING.value))
            .values(external_executor_id=bindparam("w")))
        # Its own connection: the loop's session may have been left mid-transaction by the signal.
        with settings.engine.begin() as connection:
            written = connection.execute(statement, tracked).rowcount
        self.log.info("airfleet: handing %d task(s) over to the next scheduler: %s workload id(s) written that "
                      "the database lacked", len(tracked), written if written is not None and written >= 0 else "?")

    def terminate(self) -> None:
        """Cancel everything this executor runs (Airflow's scheduler never calls this; it is for tools)."""
        client = self._client
        if client is not None:
            for workload_id in list(self._by_workload):
                try:
                    client.cancel(workload_id)
                except Exception as e:
                    self.log.warning("airfleet: cancelling workload %s failed: %s", workload_id, e)
        self.end()

    # ------------------------------------------------------------------ submit

    def _process_workloads(self, workloads: Sequence[Any]) -> None:
        from airflow.executors.workloads import ExecuteTask

        tasks = [w for w in workloads if isinstance(w, ExecuteTask)]
        if not tasks or time.monotonic() < self._retry_at:
            return  # left in queued_tasks: offered again on the next heartbeat
        try:
            client = self._setup()
        except Exception as e:
            self._warn("config", "airfleet: cannot submit: %s", e)
            return
        bodies: list[tuple[Any, dict]] = []
        for w in tasks:
            try:
                bodies.append((w, self._input_for(w)))
            except Exception as e:
                self.log.error("airfleet: task %s cannot be submitted: %s", w.ti.key, e)
                self._fail_unsubmitted(w.ti.key)
        for start in range(0, len(bodies), _BATCH):
            if not self._submit(client, bodies[start:start + _BATCH]):
                return

    def _input_for(self, w: Any) -> dict:
        from airflow.executors.base_executor import get_execution_api_server_url

        from airfleet_airflow.workload import build_workload_input

        return build_workload_input(
            w, self._config,
            airflow_default_queue=self.conf.get("operators", "default_queue", fallback="default"),
            execution_api_url=get_execution_api_server_url(self.conf),
            executors=self.conf.get("core", "executor", fallback=None),
        )

    def _submit(self, client: AirfleetClient, batch: list[tuple[Any, dict]]) -> bool:
        """Submits one batch; False when the service is unavailable (all of it stays queued for a retry)."""
        from airfleet_airflow.client import AirfleetApiError

        try:
            results = client.submit_batch([body for _, body in batch])
        except AirfleetApiError as e:
            if e.retryable:
                return self._unavailable(e)
            if len(batch) > 1:  # one bad workload refuses the batch: find it by sending them one by one
                return all(self._submit(client, [item]) for item in batch)
            w, _ = batch[0]
            self.log.error("airfleet: the service refused task %s: %s", w.ti.key, e)
            self._fail_unsubmitted(w.ti.key)
            return True
        except Exception as e:
            return self._unavailable(e)
        self._backoff = 1.0
        for (w, _), result in zip(batch, results):
            workload = result["workload"]
            key = w.ti.key
            self.queued_tasks.pop(key, None)
            self.running.add(key)
            self._track(key, workload["id"])
            # Sets external_executor_id: adoption after a scheduler restart, and the log readers, use it.
            self.running_state(key, workload["id"])
            if workload["state"] in ("succeeded", "failed", "cancelled"):  # a replay of an ended workload
                self._deferred.append({"workloadId": workload["id"], "state": workload["state"],
                                       "reason": workload.get("reason"), "exitCode": workload.get("exitCode")})
        self.log.info("airfleet: submitted %d task(s)", len(batch))
        return True

    def _unavailable(self, error: Exception) -> bool:
        self._retry_at = time.monotonic() + self._backoff
        self._warn("submit", "airfleet: submitting failed (%s); retrying in %.0f s", error, self._backoff)
        self._backoff = min(self._backoff * 2, 30.0)
        return False

    def _fail_unsubmitted(self, key: TaskInstanceKey) -> None:
        self.queued_tasks.pop(key, None)
        self.fail(key)

    def _track(self, key: TaskInstanceKey, workload_id: str) -> None:
        self._by_workload[workload_id] = _Tracked(key, workload_id)
        self._by_key[key] = workload_id

    def _untrack(self, workload_id: str) -> _Tracked | None:
        tracked = self._by_workload.pop(workload_id, None)
        if tracked is not None:
            self._by_key.pop(tracked.key, None)
        return tracked

    # ------------------------------------------------------------------ sync

    def sync(self) -> None:
        try:
            self._sync()
        except Exception as e:  # never out of a heartbeat
            self._warn("sync", "airfleet: sync failed (%s); will retry on the next heartbeat", e)

    def _sync(self) -> None:
        client = self._setup()
        if self._cursor is None:
            self._cursor = self._client.feed_head()
        for workload_id in list(self._verify):
            self._check(workload_id)
        deferred, self._deferred = self._deferred, []
        for event in deferred:
            self._deliver(event)
        if not self._by_workload:
            wait = 0  # nothing to wait for: do not hold the scheduler loop
        else:
            wait = self._config.feed_wait_ms if not deferred else 0
        page = client.events(self._cursor, limit=_FEED_PAGE, wait_ms=wait)
        for event in page["events"]:
            self._deliver(event)
        self._cursor = int(page["last"])

    def _deliver(self, event: dict) -> None:
        tracked = self._by_workload.get(event["workloadId"])
        if tracked is None:
            return  # another client's workload, or one this executor no longer follows
        state = event["state"]
        if state == "running":
            tracked.started = True
            return
        if state not in ("succeeded", "failed", "cancelled"):
            return
        # The RUNNING event that carries the workload id must reach the scheduler first: the event buffer
        # keeps one state per TI, and a TI with no external_executor_id could not be adopted nor its log read.
        buffered = self.event_buffer.get(tracked.key)
        if buffered is not None and str(buffered[0]).lower().endswith("running"):
            self._deferred.append(event)
            return
        # Nor beside an event of another try of the same TI: the scheduler handles one try per TI per loop (the
        # last in the buffer) and drops the other's event, so try 1's late end would cost try 2 its RUNNING
        # event, and with it its workload id (its log then read from try 1's workload).
        if any(getattr(k, "primary", None) == tracked.key.primary and k != tracked.key for k in self.event_buffer):
            self._deferred.append(event)
            return
        self._untrack(tracked.workload_id)
        if state == "succeeded":
            self.success(tracked.key, tracked.workload_id)
            return
        self._explain(tracked, event)
        self.fail(tracked.key, tracked.workload_id)

    def _explain(self, tracked: _Tracked, event: dict) -> None:
        """Logs why a workload failed; for failures of the infrastructure, with the service's own message
        (the TI's log shows it too, see logs.py)."""
        reason = event.get("reason")
        exit_code = event.get("exitCode")
        if reason == "task_error" and exit_code == TOKEN_EXPIRED_EXIT:
            self.log.error(
                "airfleet: task %s waited in airfleet longer than its workload token lives "
                "([scheduler] task_queued_timeout) and was not started; raise task_queued_timeout or add "
                "workers to its queue", tracked.key)
            return
        if reason == "task_error":
            self.log.warning("airfleet: task %s: the task process exited with code %s", tracked.key, exit_code)
            return
        message = ""
        try:
            from airfleet_airflow.logs import failure_summary

            message = failure_summary(self._client.workload(tracked.workload_id)) or ""
        except Exception as e:
            message = f"(its details could not be read: {e})"
        self.log.error("airfleet: task %s failed: reason=%s %s", tracked.key, reason or event["state"], message)

    def _check(self, workload_id: str) -> None:
        """An adopted workload: make sure it exists and learn whether it already ended."""
        from airfleet_airflow.client import AirfleetApiError

        tracked = self._by_workload.get(workload_id)
        if tracked is None:
            self._verify.discard(workload_id)
            return
        try:
            workload = self._client.workload(workload_id)
        except AirfleetApiError as e:
            if e.status != 404:
                raise
            self.log.error("airfleet: adopted task %s has no workload %s in airfleet; failing it",
                           tracked.key, workload_id)
            self._verify.discard(workload_id)
            self._untrack(workload_id)
            self.fail(tracked.key)
            return
        self._verify.discard(workload_id)
        if self._of_another_try(tracked.key, workload):
            self._untrack(workload_id)
            self.fail(tracked.key)
            return
        tracked.started = workload.get("startedAt") is not None
        if workload["state"] in ("succeeded", "failed", "cancelled"):
            self._deliver({"workloadId": workload_id, "state": workload["state"], "reason": workload.get("reason"),
                           "exitCode": workload.get("exitCode")})

    def _of_another_try(self, key: TaskInstanceKey, workload: dict) -> bool:
        """Whether the workload a TI's ``external_executor_id`` names ran another try than the TI's. Airflow keeps
        a retried TI's id until the scheduler writes the next try's; a scheduler killed before that leaves the
        earlier try's id, and adopting it would report that try's end as this one's."""
        from airfleet_airflow.workload import try_of_key

        ran = try_of_key(str(workload.get("key", "")))
        if ran is None or ran == key.try_number:
            return False
        self.log.warning("airfleet: %s names workload %s, which ran try %d, not try %d: not adopting it (the "
                         "scheduler resets the task)", key, workload.get("id"), ran, key.try_number)
        return True

    # ------------------------------------------------------------------ scheduler hooks

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopts every TI that has a workload id (set by the RUNNING event after submission); returns the
        others for the scheduler to reset."""
        from airfleet_airflow.client import AirfleetApiError

        not_adopted: list[TaskInstance] = []
        try:
            self._setup()
        except Exception as e:
            self.log.error("airfleet: cannot adopt tasks: %s", e)
            return list(tis)
        for ti in tis:
            workload_id = ti.external_executor_id
            if not workload_id:
                not_adopted.append(ti)
                continue
            workload = None
            try:
                workload = self._client.workload(workload_id)
            except AirfleetApiError as e:
                if e.status == 404:
                    not_adopted.append(ti)
                    continue
            except Exception:
                pass  # service unreachable: adopt now, check once it answers
            if workload is not None and self._of_another_try(ti.key, workload):
                not_adopted.append(ti)
                continue
            key = ti.key
            self.running.add(key)
            self._track(key, workload_id)
            if workload is None:
                self._verify.add(workload_id)
            elif workload["state"] in ("succeeded", "failed", "cancelled"):
                self._deferred.append({"workloadId": workload_id, "state": workload["state"],
                                       "reason": workload.get("reason"), "exitCode": workload.get("exitCode")})
            else:
                self._by_workload[workload_id].started = workload.get("startedAt") is not None
            self.log.info("airfleet: adopted %s (workload %s)", key, workload_id)
        return not_adopted

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """The scheduler gave up waiting for a queued task: cancel its workload, forget it, emit no event."""
        key = ti.key
        workload_id = self._by_key.get(key) or ti.external_executor_id
        self.queued_tasks.pop(key, None)
        self.running.discard(key)
        if workload_id:
            self._untrack(workload_id)
            self._verify.discard(workload_id)
            try:
                self._setup().cancel(workload_id)
                self.log.info("airfleet: revoked %s (workload %s cancelled)", key, workload_id)
            except Exception as e:
                self.log.warning("airfleet: revoking %s: cancelling workload %s failed: %s", key, workload_id, e)

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """The log of a running try, read from the service. Runs in the api-server, on an instance whose
        start() never ran; a non-empty source list tells Airflow not to ask a worker log server."""
        workload_id = ti.external_executor_id
        if not workload_id or try_number != ti.try_number:
            return [], []
        try:
            from airfleet_airflow.logs import read_task_log

            return read_task_log(self._setup(), workload_id)
        except Exception as e:
            self.log.warning("airfleet: reading the log of workload %s failed: %s", workload_id, e)
            return [], []

    # ------------------------------------------------------------------ helpers

    def _warn(self, topic: str, message: str, *args: Any) -> None:
        """Warns at most every 30 s per topic: a service outage should not flood the scheduler log."""
        now = time.monotonic()
        if now - self._warned.get(topic, -1e9) >= 30:
            self._warned[topic] = now
            self.log.warning(message, *args)
        else:
            self.log.debug(message, *args)
