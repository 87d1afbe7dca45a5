"""Linear: extract -> transform -> load, passing values through XCom.

Every example DAG names the executor in default_args, so it runs through airfleet even where airfleet is
not the default executor (`executor = LocalExecutor,airfleet_airflow.executor.AirfleetExecutor`). Where
AirfleetExecutor is the only or the first executor, leave that line out.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_linear():
    @task
    def extract() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def transform(values: list[int]) -> int:
        return sum(v * v for v in values)

    @task
    def load(total: int) -> None:
        print(f"loaded total={total}")
        assert total == 30

    load(transform(extract()))


airfleet_linear()
