"""AirfleetOperator, its trigger and @task.airfleet against a real `airfleet serve` (local backend: each
workload is a process on this machine). The task instance in the context is a stand-in with the fields the
operator reads (ids, try number, xcom_push); everything it talks to is real."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from conftest import ADMIN_TOKEN, free_port, wait_until

from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airfleet_airflow.operators import AirfleetOperator
from airfleet_airflow.triggers import AirfleetWorkloadTrigger

PY = sys.executable


class TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.xcoms[key] = value


def context(task_id="t", try_number=1, map_index=-1, dag_id=None):
    ti = TI(dag_id=dag_id or f"dag_{uuid.uuid4().hex[:8]}", run_id="manual__2026-12-02", task_id=task_id,
            map_index=map_index, try_number=try_number, xcoms={})
    return {"ti": ti}


@pytest.fixture
def conn(service, monkeypatch):
    """An Airflow connection of type airfleet (from the environment, as any secrets backend would give it)."""

    def make(conn_id="airfleet_test", **fields):
        value = {"conn_type": "airfleet", "host": service.url, "password": ADMIN_TOKEN, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    return make


def operator(conn_id, **kwargs):
    kwargs.setdefault("task_id", "t")
    kwargs.setdefault("backend", "local")
    # The resume guard has its own tests below; elsewhere it would only add its 20 s to every deferral.
    kwargs.setdefault("min_deferral_seconds", 0)
    return AirfleetOperator(airfleet_conn_id=conn_id, **kwargs)


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def run_deferred(op, ctx):
    """execute → TaskDeferred; the trigger rebuilt from serialize() (as the triggerer does) runs to its event;
    execute_complete gets the event's payload. Returns (result, trigger kwargs)."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airfleet_airflow.triggers.AirfleetWorkloadTrigger"
    json.dumps(kwargs)  # stored by Airflow as JSON
    rebuilt = AirfleetWorkloadTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    event = first_event(rebuilt)
    return op.execute_complete(ctx, event.payload), kwargs


def test_non_deferrable_returns_stdout_and_the_key_comes_from_the_task_instance(service, conn):
    op = operator(conn(), deferrable=False, env={"GREETING": "hello"},
                  command=[PY, "-c", "import os; print(os.environ['GREETING'], 'from airfleet')"])
    ctx = context(task_id="greet", try_number=3, map_index=4)
    assert op.execute(ctx) == "hello from airfleet"
    workload_id = ctx["ti"].xcoms["airfleet_workload_id"]
    workload = service.http.get(f"/v1/workloads/{workload_id}").json()
    ti = ctx["ti"]
    assert workload["key"] == f"airflow-operator/{ti.dag_id}/manual__2026-12-02/greet/4/try-3"
    assert workload["state"] == "succeeded" and workload["backend"] == "local"


def test_deferrable_waits_in_the_trigger_and_returns_stdout(service, conn):
    op = operator(conn(), command=[PY, "-c", "import time; time.sleep(1.5); print('line 1'); print('line 2')"])
    ctx = context()
    started = time.monotonic()
    result, kwargs = run_deferred(op, ctx)
    assert result == "line 1\nline 2"
    assert time.monotonic() - started >= 1.5
    assert kwargs["workload_id"] == ctx["ti"].xcoms["airfleet_workload_id"]
    assert ADMIN_TOKEN not in json.dumps(kwargs)  # the trigger finds the token through the connection


def test_a_string_command_runs_through_sh(service, conn):
    op = operator(conn(), deferrable=False, command="echo one; echo two >&2; echo three")
    assert op.execute(context()) == "one\nthree"


def test_a_failing_command_raises_with_exit_code_reason_and_the_end_of_stderr(service, conn):
    script = "import sys\nfor i in range(100): print(f'problem {i:03d}', file=sys.stderr)\nsys.exit(3)"
    op = operator(conn(), command=[PY, "-c", script])
    with pytest.raises(AirflowException) as failed:
        run_deferred(op, context())
    message = str(failed.value)
    assert "failed after the task started" in message and "reason=task_error, exit code 3" in message
    assert "last 20 lines of stderr" in message
    assert "problem 099" in message and "problem 080" in message and "problem 079" not in message


def test_stderr_tail_of_a_long_stream(service, conn):
    # 300 KB of stderr: the tail is found without reading it all from the start.
    script = ("import sys\nfor i in range(20000): print(f'noise {i:05d} ' + 'x' * 4, file=sys.stderr)\n"
              "print('the real error', file=sys.stderr)\nsys.exit(1)")
    op = operator(conn(), deferrable=False, command=[PY, "-c", script])
    with pytest.raises(AirflowException) as failed:
        op.execute(context())
    lines = str(failed.value).splitlines()
    assert lines[-1] == "  the real error" and lines[-2] == "  noise 19999 xxxx"
    assert "noise 19980" not in str(failed.value)


def test_secret_env_reaches_the_command_but_no_rendering_log_or_trigger(service, conn, caplog):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    op = operator(conn(), secret_env={"API_KEY": secret}, env={"PLAIN": "visible"},
                  command=[PY, "-c", "import os; print(os.environ['API_KEY'][::-1], os.environ['PLAIN'])"])
    assert "secret_env" not in op.template_fields
    ctx = context()
    caplog.set_level(logging.DEBUG)
    result, kwargs = run_deferred(op, ctx)
    assert result == f"{secret[::-1]} visible"  # delivered to the process
    assert secret not in caplog.text and secret not in json.dumps(kwargs)
    op.render_template_fields(ctx)
    rendered = {f: getattr(op, f) for f in op.template_fields}
    assert secret not in json.dumps(rendered, default=str)
    from airflow.sdk._shared.secrets_masker import redact

    assert secret not in str(redact(f"leaked: {secret}"))  # handed to Airflow's secrets masker
    workload = service.http.get(f"/v1/workloads/{ctx['ti'].xcoms['airfleet_workload_id']}").json()
    assert secret not in json.dumps(workload)  # the service's own guarantee, checked from here too


def test_secret_env_is_not_in_the_serialized_dag(conn):
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    secret = f"s3cr3t-{uuid.uuid4().hex}"
    with DAG(f"serialized_{uuid.uuid4().hex[:6]}", schedule=None) as the_dag:
        operator(conn(), command=["true"], secret_env={"API_KEY": secret}, env={"PLAIN": "visible"})
    serialized = json.dumps(DagSerialization.to_dict(the_dag))
    assert "visible" in serialized and secret not in serialized  # what the dag-processor stores and the UI shows


def test_executing_the_same_try_again_finds_the_same_workload(service, conn):
    conn_id = conn()
    ctx = context(task_id="once")
    marker = f"ran-{uuid.uuid4().hex}"
    op = operator(conn_id, deferrable=False, command=[PY, "-c", f"print('{marker}')"])
    assert op.execute(ctx) == marker
    first = ctx["ti"].xcoms["airfleet_workload_id"]
    again = operator(conn_id, deferrable=False, command=[PY, "-c", f"print('{marker}')"])
    assert again.execute(ctx) == marker
    assert ctx["ti"].xcoms["airfleet_workload_id"] == first
    retry = context(task_id="once", try_number=2, dag_id=ctx["ti"].dag_id)
    assert operator(conn_id, deferrable=False, command=[PY, "-c", f"print('{marker}')"]).execute(retry) == marker
    assert retry["ti"].xcoms["airfleet_workload_id"] != first  # a new try is a new workload
    listed = service.http.get("/v1/workloads", params={"limit": 1000}).json()["workloads"]
    assert sum(1 for w in listed if f"/{ctx['ti'].dag_id}/" in w["key"]) == 2


def test_on_kill_cancels_the_workload_the_worker_waits_for(service, conn):
    op = operator(conn(), deferrable=False, wait_seconds=1, command=[PY, "-c", "import time; time.sleep(120)"])
    ctx = context()
    outcome: dict = {}

    def run():
        try:
            op.execute(ctx)
        except Exception as e:  # noqa: BLE001 - inspected below
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    workload_id = wait_until("the submit", lambda: ctx["ti"].xcoms.get("airfleet_workload_id"), 60)
    wait_until("the command to start",
               lambda: service.http.get(f"/v1/workloads/{workload_id}").json()["state"] == "running", 60)
    op.on_kill()
    thread.join(60)
    assert not thread.is_alive()
    assert "cancelled" in str(outcome["error"])
    assert service.http.get(f"/v1/workloads/{workload_id}").json()["state"] == "cancelled"


def test_the_trigger_on_kill_cancels_a_deferred_workload(service, conn):
    op = operator(conn(), command=[PY, "-c", "import time; time.sleep(120)"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    asyncio.run(trigger.on_kill())
    workload = wait_until("the cancel", lambda: (w := service.http.get(f"/v1/workloads/{trigger.workload_id}").json())
                          ["state"] == "cancelled" and w, 60)
    assert workload["state"] == "cancelled"
    event = first_event(trigger)
    assert event.payload["workload"]["state"] == "cancelled"


def test_a_deferral_that_times_out_cancels_the_workload(service, conn):
    from datetime import timedelta

    from airflow.sdk.exceptions import TaskDeferralTimeout

    op = operator(conn(), execution_timeout=timedelta(seconds=30), command=[PY, "-c", "import time; time.sleep(120)"])
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.timeout == timedelta(seconds=30)  # the triggerer gives up after execution_timeout
    workload_id = ctx["ti"].xcoms["airfleet_workload_id"]
    # What the task runner does once the trigger timed out: a new operator object resumes with __fail__.
    resumed = operator(op.airfleet_conn_id, command=[PY, "-c", "import time; time.sleep(120)"])
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution("__fail__", {"error": "Trigger timeout"}, ctx)
    wait_until("the cancel", lambda: service.http.get(f"/v1/workloads/{workload_id}").json()["state"] == "cancelled",
               60)


# ---------------------------------------------------------------- errors that name what to fix


def test_an_unreachable_service_names_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLEET_DOWN", json.dumps(
        {"conn_type": "airfleet", "host": f"http://127.0.0.1:{free_port()}", "password": "aft_x",
         "extra": {"request_timeout": 2}}))
    with pytest.raises(AirflowException) as e:
        operator("airfleet_down", command=["true"]).execute(context())
    assert "cannot reach the airfleet service at http://127.0.0.1:" in str(e.value)
    assert "check the URL in the Airflow connection `airfleet_down`" in str(e.value)


def test_a_bad_token_says_how_to_get_one(service, conn):
    with pytest.raises(AirflowException) as e:
        operator(conn(password="aft_wrongwrongwrong0_nope"), command=["true"]).execute(context())
    assert "refused the token of the Airflow connection `airfleet_test` (HTTP 401" in str(e.value)
    assert "airfleet token create --scopes submit,read" in str(e.value)


def test_a_field_the_service_refuses_is_named(service, conn):
    with pytest.raises(AirflowException) as e:
        operator(conn(), backend="batch", command=["true"]).execute(context())
    assert "backend: 'batch' is not enabled on this service" in str(e.value) and "(field backend)" in str(e.value)


def test_bad_options_are_refused_before_anything_is_sent(conn):
    with pytest.raises(AirflowException) as e:
        operator(conn(), command=["true"], airfleet_resources={"cpu": "two", "disk": 1},
                 secret_env={"1BAD": "x"}).execute(context())
    message = str(e.value)
    assert "AirfleetOperator(task_id='t')" in message and "resources.cpu must be a non-negative number" in message
    assert "resources.disk is unknown" in message
    with pytest.raises(AirflowException) as e:
        operator(conn(), command=[]).execute(context())
    assert "command must be a non-empty list of strings" in str(e.value)
    with pytest.raises(AirflowException) as e:
        operator(conn(), command=["true"], secret_env={"1BAD": "x"}).execute(context())
    assert "secret_env name `1BAD` must match" in str(e.value)


def test_a_connection_without_token_or_host_says_which_field(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLEET_EMPTY", json.dumps({"conn_type": "airfleet", "extra": {"tls": 1}}))
    with pytest.raises(AirflowException) as e:
        operator("airfleet_empty", command=["true"]).execute(context())
    message = str(e.value)
    assert "connection `airfleet_empty` (type airfleet) is not usable" in message
    assert "host is empty" in message and "password is empty" in message and "extra has unknown keys tls" in message


def test_a_missing_connection_is_named(monkeypatch):
    with pytest.raises(AirflowException) as e:
        operator("airfleet_nowhere", command=["true"]).execute(context())
    assert "there is no Airflow connection `airfleet_nowhere`: create one of type airfleet" in str(e.value)


def test_the_default_connection_falls_back_to_the_airfleet_section(service, airfleet_env):
    airfleet_env(url=service.url, token=ADMIN_TOKEN)
    op = AirfleetOperator(task_id="t", backend="local", deferrable=False, command=[PY, "-c", "print('via cfg')"])
    assert op.execute(context()) == "via cfg"


def test_connection_fields_host_port_schema():
    from airflow.sdk import Connection

    from airfleet_airflow.hooks import config_from_connection

    def conn(**fields):
        return Connection(conn_id="c", conn_type="airfleet", password="aft_t", **fields)

    assert config_from_connection(conn(host="airfleet.internal", port=8470)).url == "http://airfleet.internal:8470"
    assert config_from_connection(conn(host="airfleet.internal", schema="https")).url == "https://airfleet.internal"
    assert config_from_connection(conn(host="http://10.0.0.5", port=8470)).url == "http://10.0.0.5:8470"
    assert config_from_connection(conn(host="https://a.example:9443/")).url == "https://a.example:9443"


# ---------------------------------------------------------------- @task.airfleet


def test_task_airfleet_is_registered_with_airflow_and_returns_stdout(service, conn):
    from airflow.sdk import dag, task

    conn_id = conn()

    @dag(dag_id=f"decorated_{uuid.uuid4().hex[:6]}", schedule=None)
    def pipeline():
        @task.airfleet(backend="local", airfleet_conn_id=conn_id, min_deferral_seconds=0)
        def greet(name: str, ti=None):
            return [PY, "-c", f"print('hello {name} from {ti.task_id}')"]

        @task.airfleet(backend="local", airfleet_conn_id=conn_id, deferrable=False)
        def shell():
            return "echo from-sh"

        greet("world")
        shell()

    the_dag = pipeline()
    greet = the_dag.get_task("greet")
    assert type(greet).__name__ == "_AirfleetDecoratedOperator" and greet.custom_operator_name == "@task.airfleet"
    ctx = {**context(task_id="greet", dag_id=the_dag.dag_id)}
    result, _ = run_deferred(greet, ctx)
    assert result == "hello world from greet"
    assert the_dag.get_task("shell").execute(context(task_id="shell")) == "from-sh"


def test_task_airfleet_refuses_a_function_that_returns_no_command(conn):
    from airflow.sdk import dag, task

    @dag(dag_id=f"decorated_{uuid.uuid4().hex[:6]}", schedule=None)
    def pipeline():
        @task.airfleet(backend="local", airfleet_conn_id=conn())
        def nothing():
            return None

        nothing()

    with pytest.raises(TypeError) as e:
        pipeline().get_task("nothing").execute(context(task_id="nothing"))
    assert "the function must return the command" in str(e.value)


# ---------------------------------------------------------------- the example of the README


def test_the_readme_shows_the_example_dag_and_it_runs(service, conn):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    example = (root / "examples" / "airfleet_operator.py").read_text()
    assert f"```python\n{example}```" in (root / "README.md").read_text()
    conn("airfleet_default")
    spec = importlib.util.spec_from_file_location("airfleet_operator_example", root / "examples" / "airfleet_operator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    the_dag = module.airfleet_operator()
    total, report = the_dag.get_task("total"), the_dag.get_task("report")
    assert report.custom_operator_name == "@task.airfleet" and total.deferrable and report.deferrable
    assert total.min_deferral_seconds == report.min_deferral_seconds == 20  # the default guard
    total.min_deferral_seconds = report.min_deferral_seconds = 0  # tested on its own below
    value, _ = run_deferred(total, context(task_id="total", dag_id=the_dag.dag_id))
    assert value == "45"
    report.op_args = [value]  # what the task runner resolves from `total.output`
    assert run_deferred(report, context(task_id="report", dag_id=the_dag.dag_id))[0] == "45 apples"


def test_the_trigger_reads_only_its_own_workloads_changes(service, conn, monkeypatch):
    # Other workloads change while the task waits: a triggerer holding many deferred tasks must not read each
    # one's changes once per task.
    from airfleet_airflow.client import AsyncAirfleetClient

    pages = []
    original = AsyncAirfleetClient.events

    async def recording(self, *args, **kwargs):
        page = await original(self, *args, **kwargs)
        pages.append(page["events"])
        return page

    monkeypatch.setattr(AsyncAirfleetClient, "events", recording)
    op = operator(conn(), command=[PY, "-c", "import time; time.sleep(2); print('mine')"], wait_seconds=1)
    ctx = context()

    def churn():
        for i in range(20):
            service.http.post("/v1/workloads", json={"key": f"churn-{uuid.uuid4().hex}", "backend": "local",
                                                      "command": [PY, "-c", "pass"]})
            time.sleep(0.05)

    other = threading.Thread(target=churn)
    other.start()
    try:
        result, kwargs = run_deferred(op, ctx)
    finally:
        other.join()
    assert result == "mine"
    seen = [e for page in pages for e in page]
    assert seen, "the trigger read no events: it would not notice a change before its poll ends"
    assert {e["workloadId"] for e in seen} == {kwargs["workload_id"]}


# ---------------------------------------------------------------- the resume guard (min_deferral_seconds)


def test_a_fast_workload_resumes_its_task_no_sooner_than_min_deferral_seconds(service, conn, caplog):
    op = operator(conn(), command=[PY, "-c", "print('quick')"], min_deferral_seconds=3)
    started = time.time()
    with caplog.at_level(logging.INFO, logger="airfleet_airflow.triggers"):
        result, kwargs = run_deferred(op, context())
    assert result == "quick"
    assert started + 3 <= kwargs["not_before"] <= time.time()
    assert time.time() - started >= 3  # the workload ended in well under a second
    assert "the task resumes in" in caplog.text


def test_a_workload_longer_than_min_deferral_seconds_is_not_held(service, conn):
    op = operator(conn(), command=[PY, "-c", "import time; time.sleep(2); print('slow')"], min_deferral_seconds=1)
    started = time.monotonic()
    result, _ = run_deferred(op, context())
    assert result == "slow"
    assert time.monotonic() - started < 2 + 1  # ended after the guard's end: fired at once, not 1 s later


def test_an_old_serialized_trigger_without_not_before_still_fires(service, conn):
    op = operator(conn(), command=[PY, "-c", "print('old')"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    del kwargs["not_before"]  # what a trigger deferred before the guard existed has in Airflow's database
    event = first_event(AirfleetWorkloadTrigger(**kwargs))
    assert event.payload["status"] == "ended" and event.payload["workload"]["state"] == "succeeded"


def test_executing_a_try_whose_workload_has_ended_completes_without_deferring(service, conn):
    conn_id = conn()
    ctx = context()
    assert operator(conn_id, deferrable=False, command=[PY, "-c", "print('done once')"]).execute(ctx) == "done once"
    # The same try executed again (a worker lost after the workload ended): no deferral, no 20 s guard.
    again = operator(conn_id, command=[PY, "-c", "print('done once')"], min_deferral_seconds=20)
    started = time.monotonic()
    assert again.execute(ctx) == "done once"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", [-1, 301])
def test_a_min_deferral_seconds_out_of_range_is_refused(value):
    with pytest.raises(AirflowException, match=r"task_id='t'.*min_deferral_seconds must be between 0 and 300"):
        AirfleetOperator(task_id="t", command="true", min_deferral_seconds=value)
