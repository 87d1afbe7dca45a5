"""A task that always fails (no retries): the run fails and the log shows the traceback."""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor", "retries": 0})
def airfleet_always_fails():
    @task
    def always_fails() -> None:
        print("always_fails: about to fail")
        raise ValueError("always_fails: this task fails every time")

    always_fails()


airfleet_always_fails()
