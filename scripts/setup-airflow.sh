#!/usr/bin/env bash
# Creates the Airflow venv (executor/airflow/.venv, or AIRFLEET_AIRFLOW_VENV): apache-airflow[postgres] 3.3.2
# and pytest exactly as executor/airflow/requirements.lock pins them, plus the airfleet-airflow plugin as an
# editable install (its sources stay live). Idempotent: skips pip when the lock, pyproject and this script
# are unchanged since the last install (stamp in the venv). The e2e suite, `npm run demo` and the plugin's
# pytest run use this venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugin="$root/executor/airflow"
venv="${AIRFLEET_AIRFLOW_VENV:-$plugin/.venv}"
lock="$plugin/requirements.lock"
command -v python3 >/dev/null || { echo "airflow: python3 is missing (apt-get install -y python3 python3-venv)" >&2; exit 1; }
want="$(cat "$lock" "$plugin/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/airflow" ] && [ "$(cat "$venv/.airfleet-stamp" 2>/dev/null)" = "$want" ]; then
  echo "airflow: $venv is up to date"; exit 0
fi
start=$(date +%s)
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" --disable-pip-version-check -q)
"${pip[@]}" install -c "$lock" 'apache-airflow[postgres]==3.3.2' 'pytest==8.4.2' wheel 'boto3==1.44.5'
# --no-build-isolation: setuptools from the venv builds it, so nothing more is downloaded.
"${pip[@]}" install --no-deps --no-build-isolation -e "$plugin"
echo "$want" > "$venv/.airfleet-stamp"
echo "airflow: installed Airflow 3.3.2 and airfleet-airflow into $venv in $(( $(date +%s) - start ))s"
