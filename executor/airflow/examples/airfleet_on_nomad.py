"""A task on Nomad: `executor_config={"airfleet": {"backend": "nomad"}}` sends it to the service's `nomad`
backend (started with `AIRFLEET_BACKENDS=pool,nomad`), which registers one Nomad batch job per try with the
task-runner image. The workload JSON (the task's token) reaches the task through a Nomad variable rendered by
a `template` block, never through the job spec (docs/nomad-backend.md).

Routing a whole queue instead: `[airfleet] queue_backends = gpu=nomad` and `@task(queue="gpu")`.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_on_nomad():
    @task(executor_config={"airfleet": {"backend": "nomad", "env": {"WHERE": "nomad"}}})
    def on_nomad() -> int:
        import os

        print(f"on nomad: WHERE={os.environ.get('WHERE')} job={os.environ.get('NOMAD_JOB_ID')}")
        return 21

    @task
    def double(x: int) -> None:
        print(f"after nomad: {x * 2}")

    double(on_nomad())


airfleet_on_nomad()
