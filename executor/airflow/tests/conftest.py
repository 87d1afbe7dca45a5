"""Shared fixtures: an Airflow home of its own, a real `airfleet serve` process, a fake at the HTTP layer
for the error paths a real service does not produce on demand, and ExecuteTask workloads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

# Before anything imports Airflow: its config is read once, at import.
_HOME = tempfile.mkdtemp(prefix="airfleet-pytest-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "pytest-" + "x" * 64)
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME}/airflow.db")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CLI = REPO / "executor" / "bin" / "airfleet.mjs"
ADMIN_TOKEN = "aft_pytestadmin00001_pytest-admin-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, fn, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported when the deadline passes
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last!r})" if last else ""))


class Service:
    """A real `airfleet serve` (embedded PGlite, pool + local backends) on a loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="airfleet-pytest-service-")
        self.log = open(os.path.join(self.data_dir, "service.log"), "wb")
        env = {**os.environ, "AIRFLEET_ADMIN_TOKEN": ADMIN_TOKEN, "AIRFLEET_DATA_DIR": self.data_dir,
               "AIRFLEET_BACKENDS": "pool,local", "AIRFLEET_LOG_LEVEL": "warn", "NODE_OPTIONS": "",
               "AIRFLEET_REAPER_INTERVAL_MS": "100"}
        self.proc = subprocess.Popen(["node", str(CLI), "serve", "--port", str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        self.http = httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        wait_until("the airfleet service", lambda: self.http.get("/readyz").status_code == 200, 60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def service():
    s = Service()
    yield s
    s.stop()


class FakeService:
    """Answers like the airfleet service, from handlers a test sets: only for errors a real one will not
    give on demand (503s, unreachable, infrastructure failures). Records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, object]] = []
        self.routes: dict[tuple[str, str], object] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self, method: str):
                parsed = urlparse(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                fake.requests.append((method, parsed.path, query, body))
                route = fake.routes.get((method, parsed.path))
                if route is None:
                    for (m, p), r in fake.routes.items():
                        if m == method and p.endswith("*") and parsed.path.startswith(p[:-1]):
                            route = r
                            break
                status, payload = (404, {"error": "not_found", "message": "no route"}) if route is None else (
                    route(query, body) if callable(route) else route)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.routes[("GET", "/v1/events")] = (200, {"events": [], "last": 0})

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake():
    f = FakeService()
    yield f
    f.stop()


def make_task(dag_id="d", task_id="t", try_number=1, map_index=-1, queue="default", pool_slots=1,
              priority_weight=1, executor_config=None, token=None):
    from airflow.executors.workloads.base import BundleInfo
    from airflow.executors.workloads.task import ExecuteTask, TaskInstanceDTO

    ti = TaskInstanceDTO(
        id=uuid.uuid4(), task_id=task_id, dag_id=dag_id, run_id="manual__2026-01-01", try_number=try_number,
        dag_version_id=uuid.uuid4(), map_index=map_index, queue=queue, pool_slots=pool_slots,
        priority_weight=priority_weight, executor_config=executor_config)
    return ExecuteTask(ti=ti, token=token or f"header.{uuid.uuid4().hex}.sig", dag_rel_path="d.py",
                       bundle_info=BundleInfo(name="dags-folder"), log_path=f"dag_id={dag_id}/attempt={try_number}.log")


@pytest.fixture
def airfleet_env(monkeypatch):
    """Sets [airfleet] options through AIRFLOW__AIRFLEET__* for the test."""

    def set_options(**options):
        for name, value in options.items():
            monkeypatch.setenv(f"AIRFLOW__AIRFLEET__{name.upper()}", str(value))

    return set_options


# ---------------------------------------------------------------- a jest-shaped report for .ci/totals.mjs


def pytest_addoption(parser):
    parser.addoption("--jest-report", default=None, help="write pass/fail counts as jest JSON here")


_counts = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        if report.outcome == "passed" and report.when == "call":
            _counts["passed"] += 1
        elif report.outcome == "failed":
            _counts["failed"] += 1
        elif report.outcome == "skipped":
            _counts["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--jest-report")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({
            "numPassedTests": _counts["passed"], "numFailedTests": _counts["failed"],
            "numPendingTests": _counts["skipped"], "numRuntimeErrorTestSuites": 1 if exitstatus not in (0, 5) and
            not _counts["failed"] else 0}))


__all__ = ["make_task", "wait_until", "ADMIN_TOKEN", "sys"]
