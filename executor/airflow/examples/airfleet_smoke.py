"""The smoke DAG `zx scripts/smoke.mjs --env <env>` triggers on a deployed Airflow: one task, two mapped
ones and a join, on the default queue."""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet", "smoke"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_smoke():
    @task
    def hello() -> list[str]:
        import platform
        import socket

        print(f"airfleet smoke: {socket.gethostname()} python {platform.python_version()}")
        return ["a", "b"]

    @task
    def each(item: str) -> str:
        return item.upper()

    @task
    def join(items: list[str]) -> str:
        joined = "".join(items)
        assert joined == "AB", joined
        return joined

    join(each.expand(item=hello()))


airfleet_smoke()
