"""Load for the Edge executor peer of the benchmark (scripts/bench/edge3.mjs runs it in .bench/edge3/venv).

Two halves, in separate processes so neither delays the other:

* ``run`` is the scheduler's side. It queues jobs through the provider's own ``EdgeExecutor.queue_workload``
  (the call Airflow's scheduler makes for every queued task) and commits them the way the scheduler does,
  and calls ``EdgeExecutor.sync()`` once a second as the scheduler's heartbeat does. It starts the ``sim``
  processes, times two phases (an open-loop rate, then a backlog) and prints one JSON line of results.
* ``sim`` is N simulated edge workers. Each follows the loop of ``airflow edge worker`` (the provider's
  ``cli/worker.py``): register, heartbeat every ``heartbeat_interval`` and whenever its job count changes,
  fetch a job every ``job_poll_interval`` while it has a free slot (and at once again after a fetch that got
  one), report the job running, then done. Requests go through aiohttp's one-shot ``aiohttp.request`` with a
  fresh JWT per call, as the provider's client does. The job itself is a no-op: it "ends" at the first of the
  worker's 0.1-s checks, and it has no output, so no log chunk is pushed.

Phase boundaries are printed as ``@mark NAME`` lines so the caller can sample CPU at the same moments.
Times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process on the host).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime


def mark(name: str) -> None:
    print(f"@mark {name}", flush=True)


# ---------------------------------------------------------------------------------------------- scheduler side


def make_workload(run_id: str, task_id: str, generator):
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads.task import TaskInstanceDTO

    ti_id = uuid.uuid4()
    ti = TaskInstanceDTO(
        id=ti_id,
        task_id=task_id,
        dag_id="airfleet_bench",
        run_id=run_id,
        try_number=1,
        dag_version_id=uuid.uuid4(),
        map_index=-1,
        hostname="",
        context_carrier={},
        queue="default",
        pool_slots=1,
        priority_weight=1,
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path="airfleet_bench.py",
        token=ExecuteTask.generate_token(str(ti_id), generator),
        log_path=f"dag_id=airfleet_bench/run_id={run_id}/task_id={task_id}/attempt=1.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )


class Scheduler:
    """The scheduler's part of the Edge executor: queue_workload + commit, and sync() every second."""

    def __init__(self, run_id: str):
        from airflow.providers.edge3.executors.edge_executor import EdgeExecutor

        self.executor = EdgeExecutor()
        self.executor.start()
        self.run_id = run_id
        self.seq = 0
        self.queued_at: dict[str, float] = {}
        self.last_sync = time.monotonic()
        self.sync_seconds = 0.0

    def queue(self, n: int, phase: str) -> None:
        from airflow.utils.session import create_session

        jobs = []
        for _ in range(n):
            self.seq += 1
            jobs.append(make_workload(self.run_id, f"{phase}_{self.seq}", self.executor.jwt_generator))
        t0 = time.monotonic()
        with create_session() as session:  # commits on exit, as the scheduler's loop does
            for w in jobs:
                self.executor.queue_workload(w, session)
        for w in jobs:
            self.queued_at[w.ti.task_id] = t0

    def heartbeat(self) -> None:
        if time.monotonic() - self.last_sync < 1.0:
            return
        t = time.monotonic()
        self.executor.sync()
        self.executor.get_event_buffer()  # the scheduler reads the events; here they are dropped
        self.last_sync = time.monotonic()
        self.sync_seconds += self.last_sync - t

    def queued_count(self) -> int:
        from sqlalchemy import func, select

        from airflow.providers.edge3.models.edge_job import EdgeJobModel
        from airflow.utils.session import create_session

        with create_session() as session:
            return session.scalar(
                select(func.count()).select_from(EdgeJobModel).where(EdgeJobModel.state == "queued")
            )


def reset_tables() -> None:
    from sqlalchemy import delete

    from airflow.providers.edge3.models.edge_job import EdgeJobModel
    from airflow.providers.edge3.models.edge_logs import EdgeLogsModel
    from airflow.providers.edge3.models.edge_worker import EdgeWorkerModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(delete(EdgeJobModel))
        session.execute(delete(EdgeLogsModel))
        session.execute(delete(EdgeWorkerModel))


class Sims:
    """The sim processes, spoken to over their stdin/stdout."""

    def __init__(self, args):
        self.procs = []
        per = math.ceil(args.workers / args.sims)
        for i in range(args.sims):
            first, count = i * per, min(per, args.workers - i * per)
            if count <= 0:
                break
            cmd = [
                sys.executable,
                __file__,
                "sim",
                f"--api-url={args.api_url}",
                f"--name-prefix={args.name_prefix}",
                f"--first={first}",
                f"--count={count}",
                f"--concurrency={args.concurrency}",
                f"--poll-interval={args.poll_interval}",
                f"--heartbeat-interval={args.heartbeat_interval}",
            ]
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def expect(self, word: str) -> list[dict]:
        out = []
        for p in self.procs:
            line = p.stdout.readline()
            if not line:
                raise SystemExit(f"edge3 driver: a worker simulator exited (code {p.wait()}); see its stderr above")
            msg = json.loads(line)
            if word not in msg:
                raise SystemExit(f"edge3 driver: a worker simulator said {line.strip()!r}, expected {word!r}")
            out.append(msg[word])
        return out

    def ask(self, command: str, word: str) -> list[dict]:
        for p in self.procs:
            p.stdin.write(command + "\n")
            p.stdin.flush()
        return self.expect(word)

    def counters(self) -> dict:
        total: dict[str, int] = {}
        for c in self.ask("snap", "snap"):
            for k, v in c.items():
                total[k] = max(total.get(k, 0), v) if k == "fetchMsMax" else total.get(k, 0) + v
        return total


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def run(args) -> None:
    reset_tables()
    scheduler = Scheduler(run_id=f"bench_{args.name_prefix}")
    sims = Sims(args)
    sims.expect("ready")
    print(json.dumps({"simPids": sims.pids()}), flush=True)
    # Every worker has polled a few times: the fleet is in its steady idle state before anything is queued.
    settle = time.monotonic() + 2 * args.poll_interval + 1
    while time.monotonic() < settle:
        scheduler.heartbeat()
        time.sleep(0.05)

    def drain(deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            scheduler.heartbeat()
            if scheduler.queued_count() == 0:
                return True
            time.sleep(0.05)
        return False

    phases = {}
    # Phase 1: jobs queued at a fixed rate (open loop, one commit per tick as the scheduler's loop would).
    c0 = sims.counters()
    mark("rate-start")
    t_start = time.monotonic()
    total = int(args.rate * args.seconds)
    done = 0
    while done < total:
        due = min(total, int((time.monotonic() - t_start) * args.rate) + 1)
        if due > done:
            scheduler.queue(due - done, "rate")
            done = due
        scheduler.heartbeat()
        time.sleep(0.002)
    drained = drain(args.rate_drain_seconds)
    t_end = time.monotonic()
    mark("rate-end")
    c1 = sims.counters()
    phases["rate"] = {"jobs": total, "seconds": t_end - t_start, "drained": drained, "requests": diff(c1, c0)}

    # Phase 2: a backlog queued as fast as the scheduler's commits go (100 per commit), drained by the fleet.
    mark("backlog-start")
    t_start = time.monotonic()
    for i in range(0, args.backlog, 100):
        scheduler.queue(min(100, args.backlog - i), "backlog")
        scheduler.heartbeat()
    drained = drain(args.backlog_drain_seconds)
    t_end = time.monotonic()
    mark("backlog-end")
    c2 = sims.counters()
    phases["backlog"] = {
        "jobs": args.backlog,
        "t0": t_start,
        "seconds": t_end - t_start,
        "drained": drained,
        "requests": diff(c2, c1),
    }

    fetched: dict[str, float] = {}
    errors: dict[str, int] = {}
    for r in sims.ask("stop", "result"):
        fetched.update(r["fetched"])
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    for p in sims.procs:
        p.wait(timeout=30)

    lat = [1000 * (fetched[k] - t) for k, t in scheduler.queued_at.items() if k.startswith("rate_") and k in fetched]
    backlog_times = [fetched[k] for k in scheduler.queued_at if k.startswith("backlog_") and k in fetched]
    b = phases["backlog"]
    b["fetched"] = len(backlog_times)
    b["perSecond"] = len(backlog_times) / (max(backlog_times) - b["t0"]) if backlog_times else 0
    r = phases["rate"]
    r["fetched"] = len(lat)
    r["p50Ms"] = pct(lat, 50)
    r["p99Ms"] = pct(lat, 99)
    r["maxMs"] = max(lat) if lat else None
    print(
        json.dumps(
            {
                "result": {
                    "workers": args.workers,
                    "pollInterval": args.poll_interval,
                    "heartbeatInterval": args.heartbeat_interval,
                    "concurrency": args.concurrency,
                    "rate": args.rate,
                    "phases": phases,
                    "errors": errors,
                    "schedulerSyncSeconds": scheduler.sync_seconds,
                }
            }
        ),
        flush=True,
    )


def diff(a: dict, b: dict) -> dict:
    """Counts of `a` less those of `b`, and a's fetchMsMax (already per interval)."""
    out = {k: v if k == "fetchMsMax" else v - b.get(k, 0) for k, v in a.items()}
    if out.get("fetch"):
        out["fetchMeanMs"] = round(out.get("fetchMsSum", 0) / out["fetch"], 1)
    return out


# ---------------------------------------------------------------------------------------------- edge workers


class Client:
    """The provider's worker-side HTTP calls, each with a JWT naming its method (the API checks that claim).

    Unlike the provider's client, which opens a connection per request (``aiohttp.request``), requests share
    one keep-alive pool of at most ``max_connections`` (a fetch waits for a free one): on a host shared with
    the server, a connection per request would cost the load generator more CPU than the server, and the
    server's own work only gets lighter (no TCP accept per request). Each call gets a fresh token, as there:
    a request that waits longer than the token lives (``[api_auth] jwt_leeway``, twice) is refused with 403.
    """

    def __init__(self, api_url: str, max_connections: int):
        from airflow.api_fastapi.auth.tokens import JWTGenerator
        from airflow.configuration import conf

        self.api_url = api_url.rstrip("/") + "/"
        self.generator = JWTGenerator(
            secret_key=conf.get("api_auth", "jwt_secret"),
            valid_for=conf.getint("api_auth", "jwt_leeway", fallback=30),
            audience="api",
        )
        self.max_connections = max_connections
        self.session = None
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.fetch_ms: list[float] = []
        self.fetch_ms_sum = 0.0

    async def call(self, kind: str, method: str, path: str, body: dict | None = None):
        import aiohttp

        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300))
        headers = {"Accept": "application/json", "Authorization": self.generator.generate({"method": path})}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        t = time.monotonic()
        try:
            async with self.session.request(method, self.api_url + path, data=data, headers=headers) as response:
                response.raise_for_status()
                result = None if response.status == 204 else await response.json()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # counted and reported; the worker carries on, as the real one retries
            name = f"{kind}: {type(error).__name__} {getattr(error, 'status', '')}".strip()
            self.errors[name] = self.errors.get(name, 0) + 1
            return None
        if kind == "fetch":
            self.fetch_ms.append(1000 * (time.monotonic() - t))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return result


class SimWorker:
    def __init__(self, client: Client, name: str, args, fetched: dict[str, float]):
        self.client = client
        self.name = name
        self.concurrency = args.concurrency
        self.poll_interval = args.poll_interval
        self.hb_interval = args.heartbeat_interval
        self.fetched = fetched
        self.jobs = 0
        self.job_ended = asyncio.Event()
        self.start_time = datetime.now().isoformat()
        self.tasks: set[asyncio.Task] = set()

    def sysinfo(self) -> dict:
        from airflow import __version__ as airflow_version
        from airflow.providers.edge3 import __version__ as edge_version

        return {
            "status": 20,
            "airflow_version": airflow_version,
            "edge_provider_version": edge_version,
            "python_version": sys.version,
            "worker_start_time": self.start_time,
            "concurrency": self.concurrency,
            "free_concurrency": self.concurrency - self.jobs,
        }

    def state(self) -> str:
        return "running" if self.jobs else "idle"

    async def register(self) -> bool:
        # The provider's client retries server errors and timeouts (10 tries, exponential waits): so here.
        body = {"state": "starting", "jobs_active": 0, "queues": None, "sysinfo": self.sysinfo()}
        for attempt in range(10):
            if await self.client.call("register", "POST", f"worker/{self.name}", body) is not None:
                return True
            await asyncio.sleep(min(30.0, 2**attempt))
        return False

    async def heartbeat(self) -> bool:
        state = self.state()
        body = {"state": state, "jobs_active": self.jobs, "queues": None, "sysinfo": self.sysinfo()}
        answer = await self.client.call("heartbeat", "PATCH", f"worker/{self.name}", body)
        return bool(answer) and answer.get("state") != state

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def loop(self, stopping: asyncio.Event) -> None:
        last_hb = 0.0
        changed = True
        previous_jobs = 0
        while not stopping.is_set():
            if time.monotonic() - last_hb > self.hb_interval or changed or previous_jobs != self.jobs:
                changed = await self.heartbeat()
                last_hb = time.monotonic()
                previous_jobs = self.jobs
            if self.concurrency - self.jobs > 0:
                self.spawn(self.fetch_and_run())
            await self.interruptible_sleep()

    async def interruptible_sleep(self) -> None:
        # The worker sleeps job_poll_interval in 0.1-s steps and stops early once a job has ended: the same
        # wake-up times, with one timer instead of ten a second per worker (2,000 of them would load the host).
        start = time.monotonic()
        self.job_ended.clear()
        try:
            await asyncio.wait_for(self.job_ended.wait(), self.poll_interval)
        except asyncio.TimeoutError:
            return
        step = math.ceil((time.monotonic() - start) / 0.1) * 0.1
        await asyncio.sleep(max(0.0, start + step - time.monotonic()))

    async def fetch_and_run(self) -> None:
        body = {"queues": None, "free_concurrency": self.concurrency - self.jobs, "supports_task_instance_uuid": True}
        job = await self.client.call("fetch", "POST", f"jobs/fetch/{self.name}", body)
        if not job:
            self.client.counts["fetchEmpty"] = self.client.counts.get("fetchEmpty", 0) + 1
            return
        self.fetched[job["task_id"]] = time.monotonic()
        self.jobs += job["concurrency_slots"]
        path = f"jobs/state/{job['dag_id']}/{job['task_id']}/{job['run_id']}/{job['try_number']}/{job['map_index']}"
        ti = {"task_instance_id": job["task_instance_id"]}
        try:
            await self.client.call("state", "PATCH", f"{path}/running", ti)
            if self.concurrency - self.jobs > 0:
                self.spawn(self.fetch_and_run())
            await asyncio.sleep(0.1)  # the no-op job is seen ended at the first check
            await self.client.call("state", "PATCH", f"{path}/success", ti)
        finally:
            self.jobs -= job["concurrency_slots"]
            self.job_ended.set()


def sim(args) -> None:
    asyncio.run(sim_main(args))


async def sim_main(args) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "stop")

    threading.Thread(target=read_stdin, daemon=True).start()
    client = Client(args.api_url, max_connections=min(args.count, 500))
    fetched: dict[str, float] = {}
    workers = [
        SimWorker(client, f"{args.name_prefix}-{i}", args, fetched) for i in range(args.first, args.first + args.count)
    ]
    registered = []
    for i in range(0, len(workers), 50):
        registered += await asyncio.gather(*(w.register() for w in workers[i : i + 50]))
    if not all(registered):
        print(json.dumps({"error": client.errors}), flush=True)
        return
    stopping = asyncio.Event()
    loops = []
    for w in workers:
        loops.append(loop.create_task(w.loop(stopping)))
        await asyncio.sleep(args.poll_interval / len(workers))  # workers started at different moments
    print(json.dumps({"ready": True}), flush=True)
    while True:
        command = await commands.get()
        if command == "snap":
            durations, client.fetch_ms = client.fetch_ms, []
            client.fetch_ms_sum += sum(durations)
            snap = dict(client.counts)
            snap["fetchMsSum"] = round(client.fetch_ms_sum)  # cumulative, like the counts
            snap["fetchMsMax"] = round(max(durations)) if durations else 0  # since the last snap
            print(json.dumps({"snap": snap}), flush=True)
        elif command == "stop":
            break
    stopping.set()
    for t in loops:
        t.cancel()
    for w in workers:
        for t in list(w.tasks):
            t.cancel()
    await asyncio.sleep(0.2)
    await client.session.close()
    print(json.dumps({"result": {"fetched": fetched, "errors": client.errors, "counts": client.counts}}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="one scenario: N simulated workers, a fixed rate, then a backlog")
    s = sub.add_parser("sim", help="(internal) simulated edge workers, started by run")
    for q in (r, s):
        q.add_argument("--api-url", required=True)
        q.add_argument("--name-prefix", default="edge-sim")
        q.add_argument("--concurrency", type=int, default=8)
        q.add_argument("--poll-interval", type=int, default=5)
        q.add_argument("--heartbeat-interval", type=int, default=30)
    r.add_argument("--workers", type=int, required=True)
    r.add_argument("--sims", type=int, default=1)
    r.add_argument("--rate", type=float, default=100)
    r.add_argument("--seconds", type=float, default=5)
    r.add_argument("--backlog", type=int, default=2000)
    # How long each phase may take to be fetched: jobs still queued then count as not dispatched in time.
    r.add_argument("--rate-drain-seconds", type=float, default=120)
    r.add_argument("--backlog-drain-seconds", type=float, default=300)
    s.add_argument("--first", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    args = p.parse_args()
    {"run": run, "sim": sim}[args.command](args)


if __name__ == "__main__":
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    main()
