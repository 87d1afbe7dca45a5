#!/usr/bin/env bash
# Stages airfleet-batch-entry (kept with the Batch backend that relies on it) into the build context.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$here/.context"
cp "$here/../../executor/src/backends/batch/entry/airfleet-batch-entry" "$here/.context/"
