#!/usr/bin/env bash
# First step for a new user: Node 24 if missing, then the locked dependencies. Needs no Docker engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-node.sh
ensure_node
echo "setup: node $(node -v), npm $(npm -v); installing the locked dependencies"
# `npm install`, not `npm ci`: the registry mirror serves only some platforms' optional binaries (Biome,
# swc), so the lock file cannot list the others and `npm ci` would refuse it. With a lock file present,
# `npm install` installs exactly the locked versions.
npm install --no-fund --no-audit --loglevel=error
echo "setup: done"
