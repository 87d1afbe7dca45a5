"""End-to-end only: a task whose image cannot be pulled. The service fails each attempt as image_pull,
retries it once (maxInfraRetries), then fails the workload; Airflow fails the task, and its log names the
reason and the service's message."""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     default_args={"executor": "AirfleetExecutor", "retries": 0})
def e2e_infra_failure():
    @task(queue="heavy", executor_config={"airfleet": {"image": "127.0.0.1:9/airfleet/no-such-image:1",
                                                       "maxInfraRetries": 1}})
    def unpullable() -> None:
        print("this never runs")

    unpullable()


e2e_infra_failure()
