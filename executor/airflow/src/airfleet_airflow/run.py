"""``python -m airfleet_airflow.run``: the command of every airfleet workload made by AirfleetExecutor.

The ExecuteTask JSON arrives in the environment variable AIRFLEET_WORKLOAD_JSON (a write-only secret of the
service). It carries the task's bearer token, so it never goes on a command line: this runner writes it to
a 0600 file in a private temporary directory, removes the variable from the environment it passes on, and
runs ``python -m airflow.sdk.execution_time.execute_workload --json-path FILE``. The token is therefore not
in any process listing, and the file is gone when the task ends.

Before starting, it checks the token's expiry (``[scheduler] task_queued_timeout`` after queueing): a task
that waited in airfleet longer would only meet a 403 from the Execution API, so it stops with a message
saying so and exit code 75 instead. Signals are passed on to the supervisor; the exit code is its own.

This module imports nothing from Airflow: it starts in a fraction of a second.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WORKLOAD_JSON_VAR = "AIRFLEET_WORKLOAD_JSON"
TOKEN_EXPIRED_EXIT = 75
# Airflow's own default for [api_auth] jwt_leeway: a token this close past expiry is still accepted.
LEEWAY_SECONDS = 10


def token_expiry(workload_json: str) -> float | None:
    """The ``exp`` claim of the workload's token (read, not verified: the server verifies it)."""
    try:
        token = json.loads(workload_json)["token"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def describe(workload_json: str) -> str:
    try:
        ti = json.loads(workload_json)["ti"]
        return f"{ti['dag_id']}.{ti['task_id']} run {ti['run_id']} map {ti.get('map_index', -1)} try {ti['try_number']}"
    except (KeyError, ValueError, TypeError):
        return "the task"


def main() -> int:
    payload = os.environ.pop(WORKLOAD_JSON_VAR, None)
    if not payload:
        print(f"airfleet_airflow.run: no {WORKLOAD_JSON_VAR} in the environment: this command runs workloads "
              "made by AirfleetExecutor and is not meant to be started by hand", file=sys.stderr)
        return 2
    expiry = token_expiry(payload)
    if expiry is not None and time.time() > expiry + LEEWAY_SECONDS:
        waited = time.time() - expiry
        print(f"airfleet: not starting {describe(payload)}: its workload token expired {waited:.0f} s ago, "
              "before a worker took it. The token lives [scheduler] task_queued_timeout from the moment "
              "Airflow queued the task; raise that timeout, or add workers (or capacity) to the task's queue.",
              file=sys.stderr, flush=True)
        return TOKEN_EXPIRED_EXIT

    private = tempfile.mkdtemp(prefix="airfleet-task-")  # mode 0700
    try:
        path = os.path.join(private, "workload.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
        del payload
        env = dict(os.environ)
        # The supervisor writes the task log here as well as to stdout (which the service keeps); the copy
        # on the worker's disk is not needed once the task ended.
        logs = os.path.join(private, "logs")
        os.mkdir(logs, 0o700)
        env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = logs
        # The handlers go in before the child starts: a signal in between would otherwise kill this runner
        # alone and leave the task running unsupervised. One that comes before the child exists is passed on
        # as soon as it does.
        child: subprocess.Popen | None = None
        early: list[int] = []

        def forward(signum, _frame):
            if child is None:
                early.append(signum)
                return
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, forward)
        child = subprocess.Popen(
            [sys.executable, "-m", "airflow.sdk.execution_time.execute_workload", "--json-path", path], env=env)
        for signum in early:
            forward(signum, None)
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:
                continue
        return code if code >= 0 else 128 - code
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
