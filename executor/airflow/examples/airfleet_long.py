"""A 90-second task that prints a line every 5 seconds: its log can be read while it runs.

With `{"marker_dir": "/some/dir"}` in the run's conf, every start of the task writes a file there, so one
can tell a task that was adopted by a restarted scheduler (one start) from one that was run again (two).
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_long():
    @task
    def ninety_seconds(dag_run=None, ti=None) -> str:
        import os
        import time

        marker_dir = (dag_run.conf or {}).get("marker_dir")
        if marker_dir:
            path = os.path.join(marker_dir, f"{ti.run_id}.{ti.task_id}.try{ti.try_number}.pid{os.getpid()}")
            with open(path, "w") as f:
                f.write("started\n")
        seconds = int((dag_run.conf or {}).get("seconds", 90))
        for elapsed in range(0, seconds, 5):
            print(f"long task: {elapsed} s of {seconds}", flush=True)
            time.sleep(5)
        print("long task: finished", flush=True)
        return "done"

    ninety_seconds()


airfleet_long()
