#!/usr/bin/env bash
# Runs the Airflow plugin's pytest suite (executor/airflow/tests) in the Airflow venv and writes a
# jest-shaped report (reports/plugin.json) for .ci/totals.mjs. It starts a real `airfleet serve` (compiled
# executor/dist, embedded PGlite): run `npm run build` first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AIRFLEET_AIRFLOW_VENV:-$root/executor/airflow/.venv}"
[ -x "$venv/bin/python" ] || { echo "test:plugin: no Airflow venv at $venv; run: bash scripts/setup-airflow.sh" >&2; exit 1; }
mkdir -p "$root/reports"
cd "$root/executor/airflow"
exec "$venv/bin/python" -m pytest tests --jest-report "$root/reports/plugin.json" "$@"
