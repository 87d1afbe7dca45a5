"""A task's log as the airfleet service keeps it, in the line format Airflow's log reader merges.

On a worker, ``execute_workload`` echoes the supervisor's task log to stdout as JSON lines (Airflow's
StructuredLogMessage, with microsecond timestamps), and the service stores stdout and stderr apart. So the
stdout stream is the task log itself and passes through unchanged: Airflow drops consecutive identical lines
with identical timestamps, and keeping the original timestamps keeps its deduplication exactly as it is for
a local log. Stderr holds what the supervisor itself printed and airfleet's own messages (a task that could
not start): those lines get a timestamp and an ``airfleet`` logger so they sort in and show as errors.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from airfleet_airflow.client import AirfleetApiError, AirfleetClient

# A UI request reads the whole log; past this much per stream, the rest is left out with a note.
MAX_STREAM_BYTES = 64 * 1024 * 1024


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _line(event: str, at: str | None, level: str = "error", logger: str = "airfleet") -> str:
    return json.dumps({"timestamp": at or _now(), "event": event, "level": level, "logger": logger},
                      ensure_ascii=False)


def _stamp(base: str | None, index: int) -> str:
    """``base`` plus ``index`` microseconds: lines that share one time keep their order and none is taken
    for a duplicate by Airflow's reader."""
    try:
        at = datetime.fromisoformat((base or "").replace("Z", "+00:00"))
    except ValueError:
        at = datetime.now(timezone.utc)
    return (at + timedelta(microseconds=index)).isoformat()


def _split(data: bytes, complete: bool) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines and not complete:
        lines.pop()  # a line still being written: the next read has it whole
    return lines


def failure_summary(workload: dict[str, Any]) -> str | None:
    """One sentence for a workload that failed or was cancelled, naming the reason and the service's message."""
    if workload.get("state") not in ("failed", "cancelled"):
        return None
    reason = workload.get("reason") or workload["state"]
    message = workload.get("message") or ""
    where = f" on worker {workload['workerName']}" if workload.get("workerName") else ""
    exit_code = workload.get("exitCode")
    code = f", exit code {exit_code}" if exit_code is not None else ""
    started = workload.get("startedAt")
    when = "after the task started" if started else "before the task started"
    retries = workload.get("infraRetries") or 0
    tried = f" after {retries} infrastructure retr{'y' if retries == 1 else 'ies'}" if retries else ""
    return (f"airfleet: workload {workload['id']} (attempt {workload.get('attempt')}) {workload['state']} "
            f"{when}{where}{tried}: reason={reason}{code}" + (f": {message}" if message else ""))


def read_task_log(client: AirfleetClient, workload_id: str) -> tuple[list[str], list[str]]:
    """(sources, lines) of a workload: every attempt's stderr and the last attempt's stdout."""
    workload = client.workload(workload_id)
    attempt = int(workload.get("attempt") or 1)
    source = (f"airfleet {client.url}: workload {workload['id']} ({workload.get('key')}), attempt {attempt}, "
              f"state {workload['state']}" + (f", worker {workload['workerName']}" if workload.get("workerName") else ""))
    lines: list[str] = []
    queued_at = workload.get("queuedAt") or workload.get("createdAt")
    # Attempts before the last one ended before their task started (the service retries only those).
    for earlier in range(1, attempt):
        data, complete, _ = _read(client, workload_id, "stderr", earlier)
        for i, text in enumerate(_split(data, True)):
            lines.append(_line(f"attempt {earlier}: {text}", _stamp(queued_at, i)))
    stdout, out_complete, out_len = _read(client, workload_id, "stdout", attempt)
    stderr, err_complete, err_len = _read(client, workload_id, "stderr", attempt)
    lines.extend(_split(stdout, out_complete))
    if out_len >= MAX_STREAM_BYTES:
        lines.append(_line(f"airfleet: stdout is longer than {MAX_STREAM_BYTES} bytes; the rest is left out "
                           f"(`airfleet logs {workload_id}` shows it all)", workload.get("finishedAt"), "warning"))
    stderr_at = workload.get("startedAt") or queued_at
    lines.extend(_line(text, _stamp(stderr_at, i), "error", "airfleet.stderr")
                 for i, text in enumerate(_split(stderr, err_complete)))
    summary = failure_summary(workload)
    if summary:
        lines.append(_line(summary, workload.get("finishedAt") or _now()))
    return [source], lines


def _read(client: AirfleetClient, workload_id: str, stream: str, attempt: int) -> tuple[bytes, bool, int]:
    try:
        return client.read_log(workload_id, stream, attempt=attempt, limit_bytes=MAX_STREAM_BYTES)
    except AirfleetApiError as e:
        if e.status == 404:
            return b"", True, 0
        raise
