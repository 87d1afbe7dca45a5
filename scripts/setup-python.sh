#!/usr/bin/env bash
# Creates integration/.venv with the pinned Python tools the integration tier runs (moto's server, later
# Airflow). Skips pip when the requirements file has not changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
req=integration/python/requirements.txt
lock=integration/python/requirements.lock
venv=integration/.venv
[ -f "$req" ] || { echo "python: no $req, nothing to install"; exit 0; }
command -v python3 >/dev/null || { echo "python: python3 is missing (apt-get install -y python3 python3-venv)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$req" "$lock" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then echo "python: $venv is up to date"; exit 0; fi
start=$(date +%s)
# The lock pins every transitive dependency, so a later release of one of them never changes the venv.
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" -c "$lock"
echo "$want" > "$stamp"
echo "python: installed $req (constrained by $lock) into $venv in $(( $(date +%s) - start ))s"
