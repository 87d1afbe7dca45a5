#!/usr/bin/env bash
# Creates integration/.venv with the pinned Python tools the integration tier runs (moto's server, the
# schemathesis fuzzer, later Airflow), constrained by the frozen integration/python/requirements.lock. Skips
# pip when neither file has changed since the last install.
#   --relock   resolve requirements.txt afresh in a new venv and freeze the result into requirements.lock
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
req=integration/python/requirements.txt
lock=integration/python/requirements.lock
venv=integration/.venv
[ -f "$req" ] || { echo "python: no $req, nothing to install"; exit 0; }
command -v python3 >/dev/null || { echo "python: python3 is missing (apt-get install -y python3 python3-venv)" >&2; exit 1; }
if [ "${1:-}" = "--relock" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  { echo '# Frozen from requirements.txt by `bash scripts/setup-python.sh --relock` (pip freeze); do not edit by hand.'
    "$venv/bin/pip" freeze --disable-pip-version-check; } > "$lock"
  cat "$req" "$lock" | sha256sum | cut -d' ' -f1 > "$venv/.requirements.sha256"
  echo "python: resolved $req and froze $(grep -vc '^#' "$lock") packages into $lock"
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$req" "$lock" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then echo "python: $venv is up to date"; exit 0; fi
start=$(date +%s)
# The lock pins every transitive dependency, so a later release of one of them never changes the venv.
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" -c "$lock"
echo "$want" > "$stamp"
echo "python: installed $req (constrained by $lock) into $venv in $(( $(date +%s) - start ))s"
