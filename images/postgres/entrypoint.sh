#!/usr/bin/env bash
# Initialises the cluster on first start (password auth, database $POSTGRES_DB), then runs postgres in the
# foreground as the postgres user. Extra arguments are passed to postgres (e.g. -c fsync=off for tests).
set -euo pipefail
# The password may come as a file (a Docker secret): POSTGRES_PASSWORD_FILE.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; fi
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
# Loopback by default (tests use host networking); a Swarm stack listens on its overlay network ('*').
POSTGRES_LISTEN_ADDRESSES="${POSTGRES_LISTEN_ADDRESSES:-127.0.0.1}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"; printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"; chown postgres "$pwfile"
  as_pg initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  if [ "$POSTGRES_LISTEN_ADDRESSES" != "127.0.0.1" ]; then
    # Beyond loopback, password (SCRAM) authentication from any address the network lets through.
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  fi
  if [ "$POSTGRES_DB" != "postgres" ]; then
    as_pg postgres --single -D "$PGDATA" postgres <<<"CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses="$POSTGRES_LISTEN_ADDRESSES" "$@"
