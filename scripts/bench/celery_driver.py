"""Load for the Celery peer of the benchmark (scripts/bench/celery.mjs runs it in .bench/celery/venv).

Sends the no-op task of celery_app.py to the running worker: a warm-up, then an open-loop rate (send→start
latency), then a backlog sent as fast as one client sends (throughput). A task's start is the moment its body
runs, which it appends to the starts file. Phase boundaries are printed as ``@mark NAME`` lines so the caller
can sample CPU at the same moments; the last line is the JSON result. Times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from celery_app import noop


def mark(name: str) -> None:
    print(f"@mark {name}", flush=True)


def read_starts(path: str) -> dict[str, tuple[float, float]]:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    out[parts[0]] = (float(parts[1]), float(parts[2]))
    except FileNotFoundError:
        pass
    return out


def wait_started(path: str, keys: list[str], deadline_s: float) -> dict[str, tuple[float, float]]:
    end = time.time() + deadline_s
    while True:
        starts = read_starts(path)
        if all(k in starts for k in keys) or time.time() > end:
            return starts
        time.sleep(0.05)


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--backlog", type=int, default=2000)
    args = p.parse_args()
    starts_file = os.environ["AIRFLEET_BENCH_STARTS"]

    warm = [f"warm-{i}" for i in range(200)]
    for k in warm:
        noop.apply_async(args=(k, time.time()))
    wait_started(starts_file, warm, 60)

    mark("rate-start")
    keys = []
    total = int(args.rate * args.seconds)
    t0 = time.time()
    for i in range(total):
        due = t0 + i / args.rate
        wait = due - time.time()
        if wait > 0.001:
            time.sleep(wait)
        k = f"rate-{i}"
        keys.append(k)
        noop.apply_async(args=(k, time.time()))
    starts = wait_started(starts_file, keys, 120)
    mark("rate-end")
    lat = [1000 * (starts[k][1] - starts[k][0]) for k in keys if k in starts]
    rate = {
        "jobs": total,
        "started": len(lat),
        "p50Ms": pct(lat, 50),
        "p99Ms": pct(lat, 99),
        "maxMs": max(lat) if lat else None,
        "sentPerSecond": total / (time.time() - t0),
    }

    mark("backlog-start")
    keys = [f"backlog-{i}" for i in range(args.backlog)]
    t0 = time.time()
    for k in keys:
        noop.apply_async(args=(k, time.time()))
    sent_s = time.time() - t0
    starts = wait_started(starts_file, keys, 300)
    mark("backlog-end")
    done = [starts[k][1] for k in keys if k in starts]
    backlog = {
        "jobs": args.backlog,
        "started": len(done),
        "sendSeconds": sent_s,
        "perSecond": len(done) / (max(done) - t0) if done else 0,
    }
    print(json.dumps({"result": {"rate": rate, "backlog": backlog}}), flush=True)


if __name__ == "__main__":
    main()
