"""What Airflow's providers manager learns of this package (the ``apache_airflow_provider`` entry point):
the ``@task.airfleet`` decorator, the ``airfleet`` connection type and the trigger module."""

from __future__ import annotations

from airfleet_airflow import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airfleet-airflow",
        "name": "airfleet",
        "description": "Run Airflow tasks and workloads on airfleet's backends (pools, local, Nomad, AWS Batch).",
        "versions": [__version__],
        "task-decorators": [{"name": "airfleet", "class-name": "airfleet_airflow.decorators.airfleet_task"}],
        "connection-types": [{"connection-type": "airfleet", "hook-class-name": "airfleet_airflow.hooks.AirfleetHook",
                              "hook-name": "airfleet"}],
        "triggers": [{"integration-name": "airfleet", "python-modules": ["airfleet_airflow.triggers"]}],
    }
