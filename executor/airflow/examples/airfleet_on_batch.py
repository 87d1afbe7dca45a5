"""A task on AWS Batch: `executor_config={"airfleet": {"backend": "batch"}}` sends it to the service's `batch`
backend (started with `AIRFLEET_BACKENDS=pool,batch`), which submits one Batch job per try with the
task-runner image of the job definition. The workload JSON (the task's token) reaches the job through a
Secrets Manager secret of that attempt, never through the job's command or environment (docs/batch-secrets.md).

Routing a whole queue instead: `[airfleet] queue_backends = batch=batch` and `@task(queue="batch")`.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_on_batch():
    @task(executor_config={"airfleet": {"backend": "batch", "env": {"WHERE": "aws-batch"}}})
    def on_batch() -> int:
        import os

        print(f"on batch: WHERE={os.environ.get('WHERE')} attempt={os.environ.get('AIRFLEET_ATTEMPT')}")
        return 21

    @task
    def double(x: int) -> None:
        print(f"after batch: {x * 2}")

    double(on_batch())


airfleet_on_batch()
