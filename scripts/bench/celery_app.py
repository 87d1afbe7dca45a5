"""The Celery app of the benchmark's Celery peer (scripts/bench/celery.mjs starts its worker).

Durable settings, as Airflow's CeleryExecutor uses them (its default_celery.py): the message is acknowledged
only after the task ran (``task_acks_late``), a worker process that dies gives its message back
(``task_reject_on_worker_lost``), and each worker process reserves one message at a time
(``worker_prefetch_multiplier = 1``). No result backend: the task is a no-op whose only effect is to record
when it started. The broker is Redis with its append-only file on (``appendfsync everysec``): Redis
acknowledges a message once it is in memory and writes it to disk within a second.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("airfleet_bench", broker=os.environ["AIRFLEET_BENCH_BROKER_URL"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="bench",
    broker_connection_retry_on_startup=True,
    # Airflow's CeleryExecutor default: a message not acknowledged within this time is delivered again.
    broker_transport_options={"visibility_timeout": 21600},
    worker_hijack_root_logger=False,
)

_log = None


@app.task(name="noop")
def noop(key: str, sent: float) -> None:
    """Records `key sent started` (wall-clock seconds) with one append: the task's only work."""
    global _log
    if _log is None:
        _log = os.open(os.environ["AIRFLEET_BENCH_STARTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_log, f"{key} {sent} {time.time()}\n".encode())
