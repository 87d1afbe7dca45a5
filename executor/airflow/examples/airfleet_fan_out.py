"""Fan-out / fan-in: 25 dynamically mapped tasks, then one that sums their results."""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_fan_out():
    @task
    def numbers() -> list[int]:
        return list(range(25))

    @task
    def square(n: int) -> int:
        print(f"square of {n}")
        return n * n

    @task
    def total(squares: list[int]) -> int:
        result = sum(squares)
        print(f"fan-in total={result}")
        assert result == sum(n * n for n in range(25))
        return result

    total(square.expand(n=numbers()))


airfleet_fan_out()
