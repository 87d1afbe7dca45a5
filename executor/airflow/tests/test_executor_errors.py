"""Error paths a real service does not produce on demand, with the service faked at the HTTP layer only."""

from __future__ import annotations

import logging
import time

from conftest import free_port, make_task

from airfleet_airflow.executor import TOKEN_EXPIRED_EXIT, AirfleetExecutor

WID = "11111111-2222-3333-4444-555555555555"


def submitted(_query, body):
    return 200, {"results": [{"created": True, "workload": {"id": WID, "state": "queued", **w}} for w in body["workloads"]]}


def feed(*events):
    """A change feed holding these events, answering `after` as the service does."""

    def answer(query, _body):
        after = int(query.get("after", 0))
        page = [e for e in events if e["seq"] > after]
        return 200, {"events": page, "last": page[-1]["seq"] if page else after}

    return answer


def make(fake, airfleet_env, url=None):
    airfleet_env(url=url or fake.url, token="aft_fake_token", feed_wait_ms=0, request_timeout=2)
    ex = AirfleetExecutor()
    ex.start()
    return ex


def test_an_unreachable_service_never_raises_and_the_task_waits_for_it(fake, airfleet_env, capsys):
    ex = make(fake, airfleet_env, url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    task = make_task()
    ex.queue_workload(task, session=None)
    for _ in range(3):
        ex.heartbeat()
    assert task.ti.key in ex.queued_tasks and not ex.running
    out = capsys.readouterr().out
    assert "retrying in" in out and "cannot reach the airfleet service" in out


def test_a_503_keeps_the_task_queued_and_the_next_try_submits_it(fake, airfleet_env):
    fake.routes[("POST", "/v1/workloads/batch")] = (503, {"error": "unavailable", "message": "database down"})
    ex = make(fake, airfleet_env)
    task = make_task()
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    assert task.ti.key in ex.queued_tasks
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex._retry_at = 0  # the backoff has passed
    ex.heartbeat()
    assert task.ti.key not in ex.queued_tasks and task.ti.key in ex.running
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == 2 and posts[0][3] == posts[1][3]  # the retry sends the same body: same key


def test_an_infrastructure_failure_fails_the_task_with_the_reason_and_message(fake, airfleet_env, capsys):
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex = make(fake, airfleet_env)
    task = make_task()
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    assert ex.get_event_buffer()[task.ti.key][1] == WID
    fake.routes[("GET", "/v1/events")] = (200, {"events": [
        {"seq": 1, "workloadId": WID, "key": "k", "state": "failed", "attempt": 4, "reason": "image_pull",
         "exitCode": None, "at": "2026-01-01T00:00:00Z"}], "last": 1})
    fake.routes[("GET", f"/v1/workloads/{WID}")] = (200, {
        "id": WID, "key": "k", "state": "failed", "attempt": 4, "reason": "image_pull", "exitCode": None,
        "infraRetries": 3, "message": "Failed to pull image local/nope:1: not found", "workerName": "w1",
        "startedAt": None})
    ex.heartbeat()
    state, info = ex.get_event_buffer()[task.ti.key]
    assert str(state).lower() == "failed" and info == WID
    out = capsys.readouterr().out
    assert "reason=image_pull" in out and "Failed to pull image local/nope:1" in out
    assert "before the task started" in out and "after 3 infrastructure retries" in out


def test_an_expired_token_is_named_in_the_scheduler_log(fake, airfleet_env, capsys):
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex = make(fake, airfleet_env)
    task = make_task()
    ex.queue_workload(task, session=None)
    ex.heartbeat()
    ex.get_event_buffer()
    fake.routes[("GET", "/v1/events")] = (200, {"events": [
        {"seq": 1, "workloadId": WID, "key": "k", "state": "failed", "attempt": 1, "reason": "task_error",
         "exitCode": TOKEN_EXPIRED_EXIT, "at": "2026-01-01T00:00:00Z"}], "last": 1})
    ex.heartbeat()
    assert str(ex.get_event_buffer()[task.ti.key][0]).lower() == "failed"
    out = capsys.readouterr().out
    assert "longer than its workload token lives" in out and "task_queued_timeout" in out


def test_a_terminal_event_waits_until_the_running_event_was_taken(fake, airfleet_env):
    """The event buffer keeps one state per TI: an outcome in the same heartbeat as the RUNNING event would
    overwrite it, and the TI would never get its external_executor_id."""
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex = make(fake, airfleet_env)
    fake.routes[("GET", "/v1/events")] = feed(
        {"seq": 5, "workloadId": WID, "key": "k", "state": "succeeded", "attempt": 1, "reason": None,
         "exitCode": 0, "at": "2026-01-01T00:00:00Z"})
    task = make_task()
    ex.queue_workload(task, session=None)
    ex.heartbeat()  # submits and reads the success in the same heartbeat
    first = ex.get_event_buffer()
    assert str(first[task.ti.key][0]).lower() == "running"
    fake.routes[("GET", "/v1/events")] = (200, {"events": [], "last": 5})
    ex.heartbeat()
    assert str(ex.get_event_buffer()[task.ti.key][0]).lower() == "success"


def test_a_garbled_feed_is_logged_and_sync_goes_on(fake, airfleet_env, capsys):
    fake.routes[("GET", "/v1/events")] = (200, {"unexpected": True})
    ex = make(fake, airfleet_env)
    ex.sync()
    out = capsys.readouterr().out
    assert "sync failed" in out


def test_a_bad_executor_config_fails_that_task_only(fake, airfleet_env, capsys):
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex = make(fake, airfleet_env)
    good, bad = make_task(task_id="good"), make_task(task_id="bad", executor_config={"airfleet": {"backend": "ecs"}})
    ex.queue_workload(good, session=None)
    ex.queue_workload(bad, session=None)
    ex.heartbeat()
    events = ex.get_event_buffer()
    assert str(events[bad.ti.key][0]).lower() == "failed" and str(events[good.ti.key][0]).lower() == "running"
    out = capsys.readouterr().out
    assert "backend `ecs` is unknown" in out


def test_sync_long_polls_only_while_it_has_work(fake, airfleet_env):
    ex = make(fake, airfleet_env)
    ex._config = ex._config.__class__(**{**ex._config.__dict__, "feed_wait_ms": 300})
    t = time.monotonic()
    ex.sync()
    assert fake.requests[-1][2]["waitMs"] == "0" and time.monotonic() - t < 1
    fake.routes[("POST", "/v1/workloads/batch")] = submitted
    ex.queue_workload(make_task(), session=None)
    ex.heartbeat()
    assert fake.requests[-1][1] == "/v1/events" and fake.requests[-1][2]["waitMs"] == "300"
    assert sum(1 for r in fake.requests[-2:] if r[1] == "/v1/events") == 1  # one feed request per heartbeat
