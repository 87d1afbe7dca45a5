"""airfleet_airflow.run, the command of every workload, with Airflow's execute_workload replaced by a stand-in
on PYTHONPATH that reports what it was given."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest


STAND_IN = '''
import json, os, signal, stat, sys, time
args = sys.argv[1:]
path = args[args.index("--json-path") + 1]
report = {"args": args, "mode": oct(stat.S_IMODE(os.stat(path).st_mode)), "dir_mode": oct(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)),
          "payload": open(path).read(), "env_has_json": "AIRFLEET_WORKLOAD_JSON" in os.environ,
          "log_folder": os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER"), "path": path, "pid": os.getpid()}
if os.environ.get("STAND_IN_WAIT"):
    # Before the report: the test signals as soon as it has read it, maybe while print() still flushes, so
    # the handler writes to the descriptor itself (print there would be a reentrant call on stdout).
    signal.signal(signal.SIGTERM, lambda *a: (os.write(1, b"got SIGTERM\\n"), os._exit(143)))
print(json.dumps(report), flush=True)
if os.environ.get("STAND_IN_WAIT"):
    time.sleep(60)
sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
'''


def token(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp, "scope": "workload"}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzUxMiJ9.{claims}.signature-part"


def workload(exp: float) -> str:
    return json.dumps({"token": token(exp), "ti": {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 2}})


@pytest.fixture
def stand_in(tmp_path):
    pkg = tmp_path / "airflow" / "sdk" / "execution_time"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "airflow", tmp_path / "airflow" / "sdk", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "execute_workload.py").write_text(STAND_IN)
    return tmp_path


def run(stand_in, payload, **env):
    full = {"PATH": os.environ["PATH"], "PYTHONPATH": str(stand_in), **env}
    if payload is not None:
        full["AIRFLEET_WORKLOAD_JSON"] = payload
    return subprocess.Popen([sys.executable, "-m", "airfleet_airflow.run"], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_workload_goes_through_a_private_file_and_never_the_environment(stand_in):
    payload = workload(time.time() + 600)
    proc = run(stand_in, payload)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = json.loads(out.splitlines()[0])
    assert report["payload"] == payload
    assert report["mode"] == "0o600" and report["dir_mode"] == "0o700"
    assert report["env_has_json"] is False
    assert report["args"][0] == "--json-path" and "signature-part" not in " ".join(report["args"])
    assert report["log_folder"].startswith(os.path.dirname(report["path"]))
    assert not os.path.exists(report["path"])  # removed when the task ended


def test_the_exit_code_is_the_supervisors(stand_in):
    proc = run(stand_in, workload(time.time() + 600), STAND_IN_EXIT="1")
    proc.communicate(timeout=30)
    assert proc.returncode == 1


def test_no_process_listing_shows_the_token(stand_in):
    proc = run(stand_in, workload(time.time() + 600), STAND_IN_WAIT="1")
    report = json.loads(proc.stdout.readline())
    for pid in (proc.pid, report["pid"]):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"signature-part" not in f.read()
    with open(f"/proc/{report['pid']}/environ", "rb") as f:
        assert b"AIRFLEET_WORKLOAD_JSON" not in f.read()
    proc.send_signal(signal.SIGTERM)  # to the runner only: it passes it on
    out, _ = proc.communicate(timeout=30)
    assert "got SIGTERM" in out and proc.returncode == 143


def test_an_expired_token_stops_before_the_start_with_the_reason(stand_in):
    proc = run(stand_in, workload(time.time() - 120))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 75 and out == ""
    assert "d.t run r map -1 try 2" in err and "task_queued_timeout" in err and "expired" in err


def test_without_a_workload_it_says_what_it_is_for(stand_in):
    proc = run(stand_in, None)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "AIRFLEET_WORKLOAD_JSON" in err


def test_the_runner_and_the_executor_module_import_cheaply():
    code = ("import sys, airfleet_airflow.executor; "
            "print(sorted(m for m in sys.modules if m.startswith('airfleet_airflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Airflow's providers manager may read the provider info (airfleet_airflow.provider imports nothing more).
    assert out.strip() in ("['airfleet_airflow', 'airfleet_airflow.executor']",
                           "['airfleet_airflow', 'airfleet_airflow.executor', 'airfleet_airflow.provider']")
    code = "import sys, airfleet_airflow.run; print(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


