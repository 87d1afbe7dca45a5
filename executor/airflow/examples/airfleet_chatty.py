"""Megabytes of output on stdout and stderr, with non-ASCII text: the whole log reaches Airflow.

Each line is numbered: Airflow's log reader merges streams by time and drops a line identical to the one
before it with the same timestamp, so numbered lines are what one can count.
"""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task

STDOUT_LINES = 20_000
STDERR_LINES = 5_000
TEXT = "ünïcødé ✓ 日本語 — ελληνικά — " + "x" * 40


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airfleet"],
     default_args={"executor": "AirfleetExecutor"})
def airfleet_chatty():
    @task
    def chatty() -> int:
        import sys

        for i in range(STDOUT_LINES):
            print(f"out {i:06d} {TEXT}")
        for i in range(STDERR_LINES):
            print(f"err {i:06d} {TEXT}", file=sys.stderr)
        print("chatty: done")
        return STDOUT_LINES + STDERR_LINES

    chatty()


airfleet_chatty()
