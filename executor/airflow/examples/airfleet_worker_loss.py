"""A task whose worker dies under it: airfleet reports the attempt `lost`, Airflow counts a failed try and
retries it (here on another worker of the queue). The first try runs long enough to be cut short."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor", "retries": 1, "retry_delay": timedelta(seconds=2)})
def airfleet_worker_loss():
    @task(queue="fragile")
    def survives_a_lost_worker(ti=None) -> str:
        import time

        print(f"worker loss: try {ti.try_number}", flush=True)
        if ti.try_number == 1:
            time.sleep(120)
        return f"finished on try {ti.try_number}"

    survives_a_lost_worker()


airfleet_worker_loss()
