#!/usr/bin/env bash
# First step for a new user: Node 24 if missing, then the locked dependencies. Needs no Docker engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-node.sh
ensure_node
echo "setup: node $(node -v), npm $(npm -v); installing dependencies (npm ci)"
npm ci --no-fund --no-audit --loglevel=error
echo "setup: done"
