"""A task that fails on its first try and succeeds on the retry: Airflow's retries work as usual."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor", "retries": 1, "retry_delay": timedelta(seconds=2)})
def airfleet_retry():
    @task
    def flaky(ti=None) -> str:
        print(f"flaky: try {ti.try_number}")
        if ti.try_number == 1:
            raise RuntimeError("flaky: failing on purpose on the first try")
        return "ok on the retry"

    flaky()


airfleet_retry()
