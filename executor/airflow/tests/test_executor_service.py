"""AirfleetExecutor (Airflow's real BaseExecutor underneath) against a real `airfleet serve` process."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ADMIN_TOKEN, make_task, wait_until

from airfleet_airflow.executor import AirfleetExecutor
from airfleet_airflow.workload import WORKLOAD_JSON_VAR


def command(script: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


@pytest.fixture
def executor(service, airfleet_env):
    def make(script="print('hello')", raw_command=None, **options):
        airfleet_env(**{"url": service.url, "token": ADMIN_TOKEN, "default_backend": "local",
                        "task_command": raw_command or command(script), "feed_wait_ms": 100, **options})
        ex = AirfleetExecutor(parallelism=32)
        ex.start()
        made.append(ex)
        return ex

    made: list[AirfleetExecutor] = []
    yield make
    for ex in made:
        ex.end()


def run_until_events(ex, keys, timeout=60):
    """Heartbeats like the scheduler loop and collects every event per key until each has a final one."""
    seen: dict = {k: [] for k in keys}

    def done():
        ex.heartbeat()
        for k, v in ex.get_event_buffer().items():
            seen.setdefault(k, []).append(v)
        return all(any(str(s).lower() in ("success", "failed") for s, _ in seen[k]) for k in keys)

    wait_until(f"final events for {keys}", done, timeout, interval=0.05)
    return seen


def states(events):
    return [str(s).lower() for s, _ in events]


def test_a_task_runs_and_reports_running_then_success_once_it_ended(service, executor):
    ex = executor("import os; print('api', os.environ['AIRFLOW__CORE__EXECUTION_API_SERVER_URL'], "
                  "'executors', os.environ['AIRFLOW__CORE__EXECUTOR'])")
    task = make_task(task_id="ok")
    key = task.ti.key
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    assert key not in ex.queued_tasks and key in ex.running  # the plugin moves it: core does not
    events = run_until_events(ex, [key])
    assert states(events[key]) == ["running", "success"]
    workload_id = events[key][0][1]
    assert events[key][1][1] == workload_id  # external_executor_id first, then the outcome
    assert key not in ex.running
    workload = service.http.get(f"/v1/workloads/{workload_id}").json()
    assert workload["state"] == "succeeded"
    assert workload["key"].startswith("airflow/d/manual__2026-01-01/ok/-1/try-1/")
    assert workload["backend"] == "local" and workload["queue"] == "default"
    out = service.http.get(f"/v1/workloads/{workload_id}/logs", params={"stream": "stdout"}).json()
    import base64

    # What a worker's Airflow needs: where the Execution API is, and the scheduler's executors (a DAG naming
    # an executor the worker's config does not list fails to parse there).
    assert "api http://localhost:8080/execution/ executors " in base64.b64decode(out["data"]).decode()


def test_a_failed_process_is_a_failure_and_every_field_reaches_the_service(service, executor):
    ex = executor("import sys; sys.exit(3)")
    task = make_task(task_id="bad", queue="etl", pool_slots=3, priority_weight=7, executor_config={
        "airfleet": {"resources": {"cpu": 0.5, "memoryMb": 256}, "env": {"STAGE": "test"},
                     "timeouts": {"runSeconds": 60}, "execConfig": {"docker": {"labels": {"team": "a"}}},
                     "image": "local/airfleet-task-runner:x", "backend": "local"}})
    key = task.ti.key
    ex.queue_workload(task, session=None)
    events = run_until_events(ex, [key])
    assert states(events[key]) == ["running", "failed"]
    w = service.http.get(f"/v1/workloads/{events[key][0][1]}").json()
    assert (w["state"], w["reason"], w["exitCode"]) == ("failed", "task_error", 3)
    assert (w["queue"], w["poolSlots"], w["priorityWeight"]) == ("etl", 3, 7)
    assert w["resources"] == {"cpu": 0.5, "memoryMb": 256}
    assert w["env"]["STAGE"] == "test" and w["timeouts"] == {"runSeconds": 60}
    assert w["execConfig"] == {"docker": {"labels": {"team": "a"}}} and w["image"] == "local/airfleet-task-runner:x"


def test_the_workload_json_reaches_the_task_and_no_read_returns_it(service, executor):
    ex = executor(f"import os, json; w = json.loads(os.environ['{WORKLOAD_JSON_VAR}']); print('task', w['ti']['task_id'])")
    task = make_task(task_id="secret", token="eyJ.secret-token-value.sig")
    ex.queue_workload(task, session=None)
    events = run_until_events(ex, [task.ti.key])
    workload_id = events[task.ti.key][0][1]
    import base64

    out = service.http.get(f"/v1/workloads/{workload_id}/logs", params={"stream": "stdout"}).json()
    assert "task secret" in base64.b64decode(out["data"]).decode()
    # A write-only secret: not in any read (even an admin's), the feed, or the list.
    assert "secret-token-value" not in service.http.get(f"/v1/workloads/{workload_id}").text
    assert "secret-token-value" not in service.http.get("/v1/workloads", params={"limit": 1000}).text
    assert "secret-token-value" not in service.http.get("/v1/events", params={"after": 0, "limit": 10000}).text


def test_a_retried_request_makes_no_second_workload_and_a_requeue_does(service, executor):
    ex = executor("import time; time.sleep(0.2)")
    task = make_task(task_id="idem")
    from airfleet_airflow.workload import build_workload_input

    body = build_workload_input(task, ex._config, airflow_default_queue="default", execution_api_url="http://x/")
    first = ex._client.submit_batch([body])[0]
    again = ex._client.submit_batch([body])[0]  # what an HTTP retry of the same queueing sends
    assert again["workload"]["id"] == first["workload"]["id"] and again["created"] is False
    requeued = make_task(task_id="idem", token="another.token.after-requeue")
    other = build_workload_input(requeued, ex._config, airflow_default_queue="default", execution_api_url="http://x/")
    assert other["key"] != body["key"]


def test_many_tasks_go_in_one_batch_and_a_refused_one_fails_alone(service, executor):
    ex = executor("print('x')")
    good = [make_task(task_id=f"m{i}", map_index=i) for i in range(30)]
    bad = make_task(task_id="nomad", executor_config={"airfleet": {"backend": "nomad"}})  # not enabled here
    invalid = make_task(task_id="invalid", executor_config={"airfleet": {"resourcez": {}}})
    for t in [*good, bad, invalid]:
        ex.queue_workload(t, session=None)
    events = run_until_events(ex, [t.ti.key for t in [*good, bad, invalid]])
    assert all(states(events[t.ti.key])[-1] == "success" for t in good)
    assert states(events[bad.ti.key]) == ["failed"] and states(events[invalid.ti.key]) == ["failed"]
    assert not ex.queued_tasks and not ex.running


def test_revoke_cancels_and_emits_nothing(service, executor):
    ex = executor("print('never')", default_backend="pool")  # no worker serves the queue: it stays queued
    task = make_task(task_id="stuck", queue="nobody-serves-this")
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    workload_id = ex.get_event_buffer()[task.ti.key][1]
    ti = SimpleNamespace(key=task.ti.key, external_executor_id=workload_id)
    ex.revoke_task(ti=ti)
    assert task.ti.key not in ex.running and task.ti.key not in ex.queued_tasks
    wait_until("the cancel", lambda: service.http.get(f"/v1/workloads/{workload_id}").json()["state"] == "cancelled")
    for _ in range(5):
        ex.heartbeat()
    assert ex.get_event_buffer() == {}


def test_a_new_executor_adopts_by_workload_id_and_reports_the_end(service, executor):
    first = executor("import time; time.sleep(2); print('adopted task done')")
    task = make_task(task_id="adopt")
    first.queue_workload(task, session=None)
    first.heartbeat()
    workload_id = first.get_event_buffer()[task.ti.key][1]
    first.end()  # the scheduler stops; the task goes on

    second = executor("print('must not run')")
    orphan = SimpleNamespace(key=task.ti.key, external_executor_id=workload_id)
    stranger = SimpleNamespace(key=make_task(task_id="x").ti.key, external_executor_id="00000000-0000-0000-0000-000000000000")
    never = SimpleNamespace(key=make_task(task_id="y").ti.key, external_executor_id=None)
    assert second.try_adopt_task_instances([orphan, stranger, never]) == [stranger, never]
    assert task.ti.key in second.running
    events = run_until_events(second, [task.ti.key])
    assert states(events[task.ti.key]) == ["success"]
    listed = service.http.get("/v1/workloads", params={"limit": 1000}).json()["workloads"]
    assert [w["id"] for w in listed if w["key"].startswith("airflow/d/manual__2026-01-01/adopt/")] == [workload_id]


def test_adopting_a_workload_that_already_ended_reports_it(service, executor):
    first = executor("print('quick')")
    task = make_task(task_id="ended")
    first.queue_workload(task, session=None)
    first.heartbeat()
    workload_id = first.get_event_buffer()[task.ti.key][1]
    wait_until("the end", lambda: service.http.get(f"/v1/workloads/{workload_id}").json()["state"] == "succeeded")
    second = executor()
    assert second.try_adopt_task_instances([SimpleNamespace(key=task.ti.key, external_executor_id=workload_id)]) == []
    assert states(run_until_events(second, [task.ti.key])[task.ti.key]) == ["success"]


def test_start_finds_the_head_of_a_long_feed(service, executor):
    import uuid

    batch = [{"key": f"feed-{uuid.uuid4()}", "command": ["true"], "queue": "nobody-serves-this"} for _ in range(700)]
    created = service.http.post("/v1/workloads/batch", json={"workloads": batch}).json()["results"]
    for r in created:  # queued -> cancelled: two events each
        service.http.post(f"/v1/workloads/{r['workload']['id']}/cancel")
    after, last = 0, 0
    while True:  # the head, the slow way
        page = service.http.get("/v1/events", params={"after": after, "limit": 10000}).json()
        if not page["events"]:
            break
        after = last = page["last"]
    ex = executor()
    assert ex._cursor == last and last > 1400


def test_get_task_log_on_a_fresh_instance_reads_the_running_log(service, executor):
    script = ("import json, time, datetime\n"
              "for i in range(3):\n"
              "    print(json.dumps({'timestamp': datetime.datetime.now(datetime.timezone.utc).isoformat(), "
              "'event': f'línea {i} ✓', 'level': 'info', 'logger': 'task.stdout'}), flush=True)\n"
              "time.sleep(30)\n")
    ex = executor(script)
    task = make_task(task_id="log")
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    workload_id = ex.get_event_buffer()[task.ti.key][1]
    reader = AirfleetExecutor()  # like the api-server: __init__ only, start() never runs
    ti = SimpleNamespace(external_executor_id=workload_id, try_number=1)

    def three_lines():
        sources, lines = reader.get_task_log(ti, 1)
        return (sources, lines) if len(lines) == 3 else None

    sources, lines = wait_until("the running log", three_lines, 30, 0.2)
    assert workload_id in sources[0]
    assert [__import__("json").loads(line)["event"] for line in lines] == ["línea 0 ✓", "línea 1 ✓", "línea 2 ✓"]
    assert reader.get_task_log(ti, 2) == ([], [])  # another try: not this workload
    service.http.post(f"/v1/workloads/{workload_id}/cancel")


# ---------------------------------------------------------------- a scheduler that stops hands its tasks over


@pytest.fixture(scope="module")
def metadata_db():
    """Airflow's metadata database, migrated by `airflow db migrate` (sqlite in the test's Airflow home), with
    bare task_instance rows: no DAG behind them, so foreign keys are off on the connection that adds them."""
    from airflow import settings
    from sqlalchemy import text

    done = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    class Db:
        def add(self, key, state="queued"):
            with settings.engine.begin() as c:
                c.execute(text("PRAGMA foreign_keys=OFF"))
                c.execute(text("INSERT INTO task_instance (id, dag_id, task_id, run_id, map_index, try_number, "
                               "max_tries, pool, pool_slots, state) VALUES (:id, :dag_id, :task_id, :run_id, "
                               ":map_index, :try_number, 0, 'default_pool', 1, :state)"),
                          {"id": uuid.uuid4().hex, "dag_id": key.dag_id, "task_id": key.task_id, "run_id": key.run_id,
                           "map_index": key.map_index, "try_number": key.try_number, "state": state})

        def set_external_id(self, key, value):
            with settings.engine.begin() as c:
                c.execute(text("UPDATE task_instance SET external_executor_id=:v WHERE dag_id=:d AND task_id=:t"),
                          {"v": value, "d": key.dag_id, "t": key.task_id})

        def add_history(self, key, try_number, external_id):
            """An earlier try of the TI, as Airflow records it when the TI is retried (prepare_db_for_next_try)."""
            with settings.engine.begin() as c:
                c.execute(text("PRAGMA foreign_keys=OFF"))
                c.execute(text("INSERT INTO task_instance_history (task_instance_id, dag_id, task_id, run_id, "
                               "map_index, try_number, max_tries, pool, pool_slots, state, external_executor_id) "
                               "VALUES (:id, :dag_id, :task_id, :run_id, :map_index, :try_number, 1, "
                               "'default_pool', 1, 'failed', :ext)"),
                          {"id": uuid.uuid4().hex, "dag_id": key.dag_id, "task_id": key.task_id, "run_id": key.run_id,
                           "map_index": key.map_index, "try_number": try_number, "ext": external_id})

        def external_id(self, key):
            with settings.engine.begin() as c:
                return c.execute(text("SELECT external_executor_id FROM task_instance WHERE dag_id=:d AND "
                                      "task_id=:t AND run_id=:r"),
                                 {"d": key.dag_id, "t": key.task_id, "r": key.run_id}).scalar_one()

    return Db()


def test_a_stopping_scheduler_hands_queued_and_unread_tasks_to_the_next_one(service, executor, metadata_db):
    # SIGTERM ends the scheduler loop wherever it is: one task was submitted but the scheduler never read its
    # RUNNING event (so never wrote its workload id), another was set queued but never submitted.
    first = executor("import time; time.sleep(1); print('handed over')")
    dag_id = f"handover_{uuid.uuid4().hex[:8]}"
    submitted, queued = make_task(dag_id=dag_id, task_id="submitted"), make_task(dag_id=dag_id, task_id="queued")
    keys = [submitted.ti.key, queued.ti.key]
    for key in keys:
        metadata_db.add(key)
    first.queue_workload(submitted, session=None)
    first.heartbeat()
    assert submitted.ti.key in first.event_buffer  # unread: the scheduler exits before its next loop
    first.queue_workload(queued, session=None)
    first.end()

    ids = {key: metadata_db.external_id(key) for key in keys}
    assert all(ids.values()) and len(set(ids.values())) == 2
    for key, workload_id in ids.items():
        workload = service.http.get(f"/v1/workloads/{workload_id}").json()
        assert workload["key"].startswith(f"airflow/{dag_id}/manual__2026-01-01/{key.task_id}/-1/try-1/")

    # The next scheduler adopts both from what its database says, and reports their ends.
    second = executor("print('unused: adopted tasks are not submitted again')")
    tis = [SimpleNamespace(key=key, external_executor_id=ids[key]) for key in keys]
    assert second.try_adopt_task_instances(tis) == []
    seen = run_until_events(second, keys)
    assert all(states(seen[key])[-1] == "success" for key in keys)
    listed = service.http.get("/v1/workloads", params={"limit": 1000}).json()["workloads"]
    assert sorted(w["key"].split("/")[3] for w in listed if w["key"].startswith(f"airflow/{dag_id}/")) == [
        "queued", "submitted"]  # one workload each: nothing ran twice


def test_a_stopping_scheduler_hands_over_tasks_whose_events_it_read_but_never_committed(service, executor,
                                                                                         metadata_db):
    # The scheduler's process_executor_events empties the event buffer first and commits the workload ids at
    # the end of its loop: a SIGTERM in between (the likely cause of a CI failure: mapped tasks reset and re-run
    # under try 2) left
    # nothing in the buffer for end() to hand over.
    first = executor("import time; time.sleep(1); print('handed over')")
    task = make_task(dag_id=f"read_{uuid.uuid4().hex[:8]}", map_index=3)
    metadata_db.add(task.ti.key)
    first.queue_workload(task, session=None)
    first.heartbeat()
    events = first.get_event_buffer()  # read by the loop, whose session is then rolled back by the signal
    assert events[task.ti.key][0] == "running"
    assert metadata_db.external_id(task.ti.key) is None
    first.end()

    workload_id = metadata_db.external_id(task.ti.key)
    assert workload_id == events[task.ti.key][1]
    second = executor("print('unused: adopted tasks are not submitted again')")
    assert second.try_adopt_task_instances([SimpleNamespace(key=task.ti.key, external_executor_id=workload_id)]) == []
    assert states(run_until_events(second, [task.ti.key])[task.ti.key])[-1] == "success"


def test_a_stopping_scheduler_replaces_the_earlier_try_id_a_retried_task_still_carries(service, executor,
                                                                                      metadata_db):
    # Airflow keeps a retried TI's external_executor_id (try 1's workload) until the scheduler writes try 2's;
    # a SIGTERM between reading try 2's RUNNING event and committing it left try 1's id on try 2 (seen in a CI run:
    # try 2's log read from try 1's workload).
    first = executor("print('try 2')")
    dag_id = f"retried_{uuid.uuid4().hex[:8]}"
    task = make_task(dag_id=dag_id, try_number=2)
    metadata_db.add(task.ti.key)
    metadata_db.add_history(task.ti.key, 1, "try-1-workload")
    metadata_db.set_external_id(task.ti.key, "try-1-workload")
    first.queue_workload(task, session=None)
    first.heartbeat()
    events = first.get_event_buffer()
    first.end()
    assert metadata_db.external_id(task.ti.key) == events[task.ti.key][1]
    workload = service.http.get(f"/v1/workloads/{events[task.ti.key][1]}").json()
    assert "/try-2/" in workload["key"]


def test_a_task_whose_id_names_an_earlier_try_is_not_adopted_as_this_try(service, executor):
    # After a SIGKILL nothing writes try 2's id: the TI still names try 1's workload, which ended. Adopting it
    # would report try 1's end as try 2's; the scheduler resets the task instead.
    ex = executor("print('try 1')")
    first_try = make_task(dag_id=f"stale_{uuid.uuid4().hex[:8]}", task_id="t", try_number=1)
    ex.queue_workload(first_try, session=None)
    seen = run_until_events(ex, [first_try.ti.key])
    try_1_workload = next(info for state, info in seen[first_try.ti.key] if str(state).lower() == "running")
    second_try = make_task(dag_id=first_try.ti.dag_id, task_id="t", try_number=2)
    ti = SimpleNamespace(key=second_try.ti.key, external_executor_id=try_1_workload)
    nxt = executor()
    assert nxt.try_adopt_task_instances([ti]) == [ti]
    assert second_try.ti.key not in nxt.running
    nxt.heartbeat()
    assert second_try.ti.key not in nxt.get_event_buffer()


def test_a_stopping_scheduler_leaves_an_id_the_database_has_alone(service, executor, metadata_db):
    ex = executor()
    task = make_task(dag_id=f"kept_{uuid.uuid4().hex[:8]}")
    metadata_db.add(task.ti.key)
    metadata_db.set_external_id(task.ti.key, "set-by-the-scheduler")
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    ex.end()
    assert metadata_db.external_id(task.ti.key) == "set-by-the-scheduler"
