"""Airflow's RemoteLogIO protocol over the airfleet service's log store (see log_config.py)."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_UNFINISHED = {"running", "deferred", "queued", "scheduled", "up_for_reschedule", "restarting"}


class AirfleetRemoteLogIO:
    """Reads a task try's log from the service by the workload id Airflow keeps in ``external_executor_id``.

    Tries that did not run through airfleet (no such workload) read as empty, so Airflow falls back to its
    local file: tasks of a LocalExecutor beside airfleet keep their logs.
    """

    processors: tuple = ()

    def __init__(self) -> None:
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        with self._lock:
            if self._client is None:
                from airfleet_airflow.client import AirfleetClient
                from airfleet_airflow.config import load_airflow_config

                self._client = AirfleetClient(load_airflow_config())
            return self._client

    def upload(self, path: Any, ti: Any = None) -> None:
        """Nothing to do: the service stored the log while the task ran."""

    def read(self, relative_path: str, ti: Any) -> tuple[list[str], list[str]]:
        workload_id = getattr(ti, "external_executor_id", None)
        state = str(getattr(ti, "state", "") or "")
        state = state.rsplit(".", 1)[-1].lower()
        # Running tries are served by the executor's get_task_log; reading them here too would show every line twice.
        if not workload_id or state in _UNFINISHED:
            return [], []
        from airfleet_airflow.client import AirfleetApiError
        from airfleet_airflow.logs import read_task_log

        try:
            return read_task_log(self.client(), workload_id)
        except AirfleetApiError as e:
            if e.status == 404:
                return [], []
            log.warning("airfleet: reading the log of workload %s failed: %s", workload_id, e)
            return [f"airfleet: reading the log of workload {workload_id} failed: {e}"], []
        except Exception as e:  # a log read must never break the UI
            log.warning("airfleet: reading the log of workload %s failed: %s", workload_id, e)
            return [f"airfleet: reading the log of workload {workload_id} failed: {e}"], []
