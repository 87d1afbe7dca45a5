"""Two executors in one DAG, with `[core] executor = LocalExecutor,airfleet_airflow.executor.AirfleetExecutor`:
a task on the default LocalExecutor beside airfleet ones, one of them on the service's `local` backend through
its executor_config.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"])
def airfleet_mixed():
    @task(executor="LocalExecutor")
    def on_local_executor() -> str:
        print("mixed: on LocalExecutor")
        return "LocalExecutor"

    @task(executor="AirfleetExecutor")
    def on_airfleet_pool() -> str:
        print("mixed: on an airfleet pull worker")
        return "airfleet pool"

    @task(executor="AirfleetExecutor", executor_config={"airfleet": {"backend": "local", "env": {"MIXED": "yes"}}})
    def on_airfleet_local_backend() -> str:
        import os

        print(f"mixed: on the airfleet service's host, MIXED={os.environ.get('MIXED')}")
        return "airfleet local"

    @task(executor="AirfleetExecutor")
    def report(a: str, b: str, c: str) -> None:
        print(f"mixed: ran on {a}, {b}, {c}")

    report(on_local_executor(), on_airfleet_pool(), on_airfleet_local_backend())


airfleet_mixed()
