"""Two queues, different slot sizes: `light` tasks take one slot of a pull worker, `heavy` tasks two.

A worker started with `airfleet worker --queues heavy --concurrency 2` runs one heavy task at a time. Airflow's
`pool_slots` is what the service counts (as the workload's poolSlots) and `queue` picks the workers.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_queues():
    @task(queue="light", pool_slots=1)
    def light(i: int) -> str:
        import socket

        print(f"light task {i} on {socket.gethostname()}")
        return "light"

    @task(queue="heavy", pool_slots=2)
    def heavy(i: int) -> str:
        print(f"heavy task {i}, two slots")
        return "heavy"

    for i in range(2):
        light.override(task_id=f"light_{i}")(i)
        heavy.override(task_id=f"heavy_{i}")(i)


airfleet_queues()
