#!/usr/bin/env bash
# Stages the task-runner image's build context in images/task-runner/.context: Python wheels of
# apache-airflow-core, apache-airflow-task-sdk and apache-airflow-providers-standard (TaskFlow's @task and
# the core operators live there) at the versions of executor/airflow/requirements.lock, fetched here on the
# host because containers cannot reach PyPI over HTTPS; the airfleet-airflow plugin as a wheel; and the
# example DAGs and airfleet-batch-entry. Node and the airfleet worker come from the executor image (see the Dockerfile), so
# images/build-all.sh builds that one first (alphabetical order). The wheels are fetched again only when the
# lock changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
plugin="$root/executor/airflow"
lock="$plugin/requirements.lock"
ctx="$here/.context"
venv="${AIRFLEET_AIRFLOW_VENV:-$plugin/.venv}"
# Third-party wheels change with the lock only; the plugin and the DAGs are staged again every time (cheap,
# and their own layers in the Dockerfile, so a plugin change does not reinstall Airflow).
stamp_want="$( { cat "$lock" "$here/prepare.sh"; } | sha256sum | cut -c1-16)"
bash "$root/scripts/setup-airflow.sh" >/dev/null  # its pip builds the plugin wheel
rm -rf "$ctx/plugin" "$ctx/dags" && mkdir -p "$ctx/plugin" "$ctx/dags"
"$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$ctx/plugin" "$plugin" >/dev/null
rm -rf "$plugin/build"
cp "$plugin"/examples/*.py "$ctx/dags/"
# The first process of every AWS Batch job airfleet submits with secrets (an Airflow task always has one: its
# workload JSON); kept with the Batch backend (docs/batch-secrets.md).
cp "$root/executor/src/backends/batch/entry/airfleet-batch-entry" "$ctx/airfleet-batch-entry"
[ "$(cat "$ctx/.stamp" 2>/dev/null)" = "$stamp_want" ] && exit 0
# The wheels depend on the lock alone: kept in a cache outside the checkout too (AIRFLEET_CACHE_DIR), so a
# fresh clone on the same machine (CI) does not download them again.
cache="${AIRFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/airfleet}/task-runner-wheels-$stamp_want"
if [ -f "$cache/requirements.lock" ]; then
  rm -rf "$ctx/wheels" && cp -a "$cache" "$ctx/wheels" && echo "$stamp_want" > "$ctx/.stamp" && exit 0
fi

rm -rf "$ctx/wheels" && mkdir -p "$ctx/wheels"
# Wheels for the image's Python (Debian bookworm: CPython 3.11, glibc 2.36), whatever Python the host has.
"$venv/bin/pip" download -q --disable-pip-version-check -d "$ctx/wheels" -c "$lock" --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform linux_x86_64 \
  apache-airflow-core==3.3.2 apache-airflow-task-sdk==1.3.2 apache-airflow-providers-standard
cp "$lock" "$ctx/wheels/requirements.lock"
echo "$stamp_want" > "$ctx/.stamp"
if mkdir -p "$(dirname "$cache")" 2>/dev/null; then
  rm -rf "$cache.tmp" && cp -a "$ctx/wheels" "$cache.tmp" && rm -rf "$cache" && mv "$cache.tmp" "$cache" || true
fi
