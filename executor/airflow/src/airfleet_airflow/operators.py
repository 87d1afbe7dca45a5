"""AirfleetOperator: runs one command as an airfleet workload on any backend, from a DAG under any executor.

``execute`` submits the workload (its key comes from the task instance, so a repeated submit of one try
finds the workload already there), then defers to AirfleetWorkloadTrigger: the task waits in the triggerer,
not in a worker slot. ``execute_complete`` returns the workload's stdout (the XCom ``return_value``) or
raises with the reason, exit code, message and the end of stderr. With ``deferrable=False`` the worker waits
itself, with the same long-poll loop.

``secret_env`` goes into the service's write-only ``secretEnv`` (encrypted at rest, given only to the
task, never returned by a read); it is not a template field, so it is neither rendered nor stored with the
rendered fields, and each value is handed to Airflow's secrets masker before anything is logged.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airfleet_airflow.hooks import DEFAULT_CONN_ID, AirfleetConnectionError, config_for
from airfleet_airflow.workload import InvalidExecutorConfig, check_options, env_problems, task_key

KEY_PREFIX = "airflow-operator/"
MAX_OUTPUT_BYTES = 1 << 20
STDERR_TAIL_LINES = 20
_STDERR_TAIL_BYTES = 64 * 1024
# Longer than the scheduler takes, on a loaded host, to read a deferring run's exit (13 s measured in
# integration/test/airflow-e2e.test.ts on 2 cores); only workloads ending that soon after deferring wait.
MIN_DEFERRAL_SECONDS = 20.0


def _as_argv(command: Any, where: str) -> list[str]:
    """A list of strings as it is, a string through ``sh -c``."""
    if isinstance(command, str):
        if not command.strip():
            raise AirflowException(f"{where}: command is an empty string")
        return ["sh", "-c", command]
    if isinstance(command, (list, tuple)) and command and all(isinstance(a, str) for a in command):
        return list(command)
    raise AirflowException(f"{where}: command must be a non-empty list of strings (argv) or a string run by "
                           f"sh -c, not {command!r:.200}")


def _stream_end(client: Any, workload_id: str, stream: str) -> int:
    """Where a finished stream ends, found with one-byte reads (a gallop, then a bisection)."""
    def has_byte(offset: int) -> bool:
        page = client.request("GET", f"/v1/workloads/{workload_id}/logs",
                              params={"stream": stream, "offset": offset, "maxBytes": 1})
        return bool(page["data"])

    lo, hi = 0, _STDERR_TAIL_BYTES
    if not has_byte(0):
        return 0
    while has_byte(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if has_byte(mid) else (lo, mid)
    return hi


def stderr_tail(client: Any, workload_id: str, lines: int = STDERR_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the last attempt's stderr."""
    end = _stream_end(client, workload_id, "stderr")
    start = max(0, end - _STDERR_TAIL_BYTES)
    page = client.request("GET", f"/v1/workloads/{workload_id}/logs",
                          params={"stream": "stderr", "offset": start, "maxBytes": end - start or 1})
    text = base64.b64decode(page["data"]).decode("utf-8", errors="replace")
    kept = text.splitlines()
    if start > 0 and kept:
        kept = kept[1:]  # the first line is cut
    return kept[-lines:]


class AirfleetOperator(BaseOperator):
    """Runs ``command`` as an airfleet workload and returns its stdout.

    :param command: argv (a list of strings), or a string run by ``sh -c``. Templated.
    :param image: container image (docker runtime, Nomad, Batch). Templated.
    :param airfleet_queue: the airfleet queue (``queue`` is Airflow's own, for this task's executor). Templated.
    :param backend: pool | local | nomad | batch; default: the connection's ``default_backend`` routing.
    :param env: environment of the command (visible to admin tokens of the service). Templated.
    :param secret_env: environment holding secrets: write-only in the service, masked in Airflow's logs,
        never templated or rendered.
    :param airfleet_resources: ``{"cpu": 1.5, "memoryMb": 512, "gpus": 0}`` (``resources`` is Airflow's own).
    :param exec_config: per-backend overrides, e.g. ``{"nomad": {...}}``. Templated.
    :param timeouts: ``{"pendingSeconds": .., "runSeconds": ..}``: the service fails the workload past them.
    :param max_infra_retries: the service's retries of failures before the command started.
    :param airfleet_conn_id: the Airflow connection of type ``airfleet`` (service URL and token).
    :param deferrable: wait in the triggerer (default) or in the worker.
    :param wait_seconds: how long one long poll of the service may last.
    :param min_deferral_seconds: the task resumes no sooner than this after deferring, however fast the
        workload ends: Airflow 3.3 fails a resumed run that starts before the scheduler has read the
        deferring run's exit (executor/airflow/README.md). 0 turns the guard off.
    :param max_output_bytes: stdout beyond this is left out of the XCom (and the log says so).
    """

    template_fields: Sequence[str] = ("command", "image", "airfleet_queue", "backend", "env", "exec_config")
    template_fields_renderers = {"env": "json", "exec_config": "json", "command": "py"}
    ui_color = "#dbeafe"

    def __init__(self, *, command: list[str] | str, image: str | None = None, airfleet_queue: str = "default",
                 backend: str | None = None, env: dict[str, str] | None = None,
                 secret_env: dict[str, str] | None = None, airfleet_resources: dict[str, Any] | None = None,
                 exec_config: dict[str, Any] | None = None, timeouts: dict[str, int] | None = None,
                 max_infra_retries: int | None = None, airfleet_conn_id: str = DEFAULT_CONN_ID,
                 deferrable: bool = True, wait_seconds: float = 30.0,
                 min_deferral_seconds: float = MIN_DEFERRAL_SECONDS, max_output_bytes: int = MAX_OUTPUT_BYTES,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.image = image
        self.airfleet_queue = airfleet_queue
        self.backend = backend
        self.env = env or {}
        self.secret_env = dict(secret_env or {})
        self.airfleet_resources = airfleet_resources or {}
        self.exec_config = exec_config or {}
        self.timeouts = timeouts or {}
        self.max_infra_retries = max_infra_retries
        self.airfleet_conn_id = airfleet_conn_id
        self.deferrable = deferrable
        self.wait_seconds = wait_seconds
        if not 0 <= min_deferral_seconds <= 300:
            raise AirflowException(f"AirfleetOperator(task_id={self.task_id!r}): min_deferral_seconds must be between "
                                   f"0 and 300 seconds, not {min_deferral_seconds!r}")
        self.min_deferral_seconds = float(min_deferral_seconds)
        self.max_output_bytes = max_output_bytes
        self._workload_id: str | None = None

    # ------------------------------------------------------------------ helpers

    @property
    def _where(self) -> str:
        return f"the Airflow connection `{self.airfleet_conn_id}`"

    def _config(self):
        try:
            return config_for(self.airfleet_conn_id)
        except AirfleetConnectionError as e:
            raise AirflowException(f"airfleet: {e}") from e

    def _client(self):
        from airfleet_airflow.client import AirfleetClient

        return AirfleetClient(self._config())

    def workload_key(self, context: Any) -> str:
        """One key per try of this task instance: a repeated submit of the same try is the same workload."""
        return task_key(context["ti"], KEY_PREFIX)

    def workload_input(self, context: Any, config: Any) -> dict[str, Any]:
        where = f"AirfleetOperator(task_id={self.task_id!r})"
        options = {"queue": self.airfleet_queue, "env": self.env, "resources": self.airfleet_resources,
                   "execConfig": self.exec_config, "timeouts": self.timeouts}
        if self.backend:
            options["backend"] = self.backend
        if self.image:
            options["image"] = self.image
        try:
            check_options(options, where)
        except InvalidExecutorConfig as e:
            raise AirflowException(str(e)) from e
        secret_problems = env_problems(self.secret_env, "secret_env")
        if secret_problems:
            raise AirflowException(f"{where}: " + "; ".join(secret_problems))
        body: dict[str, Any] = {
            "key": self.workload_key(context),
            "command": _as_argv(self.command, where),
            "queue": self.airfleet_queue,
            "backend": self.backend or config.backend_for(self.airfleet_queue),
            "env": dict(self.env),
            "resources": {k: v for k, v in self.airfleet_resources.items() if v is not None},
            "execConfig": dict(self.exec_config),
            "timeouts": dict(self.timeouts),
        }
        if self.image:
            body["image"] = self.image
        if self.max_infra_retries is not None:
            body["maxInfraRetries"] = self.max_infra_retries
        if self.secret_env:
            body["secretEnv"] = dict(self.secret_env)
        return body

    def _fail(self, message: str, error: Exception | None = None):
        raise AirflowException(f"airfleet: {message}") from error

    # ------------------------------------------------------------------ execute

    def execute(self, context: Any) -> Any:
        from airflow.sdk.log import mask_secret

        from airfleet_airflow.client import AirfleetApiError, AirfleetClient, AirfleetUnreachable
        from airfleet_airflow.triggers import TERMINAL, AirfleetWorkloadTrigger, explain, summary

        for value in self.secret_env.values():
            if isinstance(value, str) and value:
                mask_secret(value)
        config = self._config()
        body = self.workload_input(context, config)
        client = AirfleetClient(config)
        try:
            after = client.feed_head()  # before the submit: every change of the workload comes after it
            result = client.submit_batch([body])[0]
        except (AirfleetApiError, AirfleetUnreachable) as e:
            self._fail("cannot submit the workload: " + explain(e, self._where), e)
        finally:
            client.close()
        workload = result["workload"]
        self._workload_id = workload["id"]
        self.log.info("airfleet: workload %s (key %s) %s on backend %s, queue %s; %s", workload["id"], body["key"],
                      "submitted" if result["created"] else f"was submitted already ({workload['state']})",
                      body["backend"], body["queue"], f"{config.url}/ui/#/workloads/{workload['id']}")
        context["ti"].xcom_push(key="airfleet_workload_id", value=workload["id"])
        if workload["state"] in TERMINAL:  # a repeated execute of a try whose workload has ended: nothing to wait for
            return self.execute_complete(context, {"status": "ended", "workload": summary(workload)})
        if self.deferrable:
            self.defer(trigger=AirfleetWorkloadTrigger(workload["id"], self.airfleet_conn_id, after,
                                                       self.wait_seconds,
                                                       not_before=time.time() + self.min_deferral_seconds),
                       method_name="execute_complete", timeout=self.execution_timeout)
        return self.execute_complete(context, self._wait_here(config, workload["id"], after))

    def _wait_here(self, config: Any, workload_id: str, after: int) -> dict[str, Any]:
        from airfleet_airflow.client import AsyncAirfleetClient
        from airfleet_airflow.triggers import wait_for_end

        async def wait() -> dict[str, Any]:
            client = AsyncAirfleetClient(config)
            try:
                return await wait_for_end(client, workload_id, after, self.wait_seconds, self._where)
            finally:
                await client.close()

        return asyncio.run(wait())

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airfleet_airflow.logs import failure_summary

        if event.get("status") != "ended":
            self._fail(str(event.get("message", event)).removeprefix("airfleet: "))
        workload = event["workload"]
        self._workload_id = workload["id"]
        client = self._client()
        try:
            if workload["state"] == "succeeded":
                return self._stdout(client, workload)
            tail = stderr_tail(client, workload["id"])
        finally:
            client.close()
        summary = failure_summary(workload) or f"airfleet: workload {workload['id']} {workload['state']}"
        shown = "\n".join(f"  {line}" for line in tail)
        raise AirflowException(summary + (f"\nlast {len(tail)} lines of stderr:\n{shown}" if tail else
                                          "\n(stderr is empty)"))

    def _stdout(self, client: Any, workload: dict[str, Any]) -> str:
        data, complete, _ = client.read_log(workload["id"], "stdout", limit_bytes=self.max_output_bytes)
        if len(data) > self.max_output_bytes or not complete:
            data = data[: self.max_output_bytes]
            self.log.warning("airfleet: stdout of workload %s is longer than %d bytes; the XCom holds the first %d "
                             "(`airfleet logs %s` shows it all)", workload["id"], self.max_output_bytes,
                             self.max_output_bytes, workload["id"])
        return data.decode("utf-8", errors="replace").removesuffix("\n")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Airflow resumes the task to fail it (the trigger failed, or the wait outlived execution_timeout):
        the workload would run on with no one waiting for it, so it is cancelled first."""
        from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR

        if next_method == TRIGGER_FAIL_REPR:
            self._cancel(self.workload_key(context), "the task fails while the workload may still run")
        return super().resume_execution(next_method, next_kwargs, context)

    def on_kill(self) -> None:
        """The task is being stopped while the worker waits (non-deferrable): cancel the workload. A deferred
        task is cancelled by its trigger's on_kill."""
        if self._workload_id:
            self._cancel(self._workload_id, "the task is being stopped")

    def _cancel(self, id_or_key: str, why: str) -> None:
        try:
            client = self._client()
        except Exception as e:  # noqa: BLE001 - called while failing or being killed: must not raise
            self.log.warning("airfleet: cannot cancel workload %s: %s", id_or_key, e)
            return
        try:
            workload = client.cancel(id_or_key)
            self.log.info("airfleet: cancelled workload %s (%s)", workload.get("id", id_or_key), why)
        except Exception as e:  # noqa: BLE001 - as above; a 409 means it had ended already
            self.log.warning("airfleet: cancelling workload %s failed: %s", id_or_key, e)
        finally:
            client.close()
