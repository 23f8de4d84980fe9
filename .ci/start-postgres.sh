#!/usr/bin/env bash
# A PostgreSQL server for the production-instance test (deploy/dagster.yaml): Debian's postgresql-15, listening on
# loopback only, with one database and one user. Idempotent: a second call finds the cluster running and only
# prints the variables again.
#
#   bash .ci/start-postgres.sh >pg.env && source pg.env   # exports DAGSTER_PG_* and EDUGRAPH_POSTGRES_URL
#   bash .ci/start-postgres.sh stop
#
# EDUGRAPH_PG_DIR (default /tmp/edugraph-postgres-<uid>): cluster, socket and log. EDUGRAPH_PG_PORT (default 54329).
# Everything but the `export` lines goes to stderr, so that stdout is a file to source. Its exit status says whether
# the server is up: check it before sourcing (`eval "$(...)"` would hide a failure: eval's status is the exports').
set -euo pipefail

PG_VERSION=15
PG_DIR=${EDUGRAPH_PG_DIR:-/tmp/edugraph-postgres-$(id -u)}
PG_PORT=${EDUGRAPH_PG_PORT:-54329}
DB_NAME=edugraph
DB_USER=edugraph
# Loopback only, a throwaway cluster: the password keeps the TCP auth path the production config uses honest,
# it protects nothing.
DB_PASSWORD=edugraph-ci
BIN=/usr/lib/postgresql/$PG_VERSION/bin

log() { echo "start-postgres: $*" >&2; }

if [ ! -x "$BIN/postgres" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "$BIN/postgres is missing and this is not root: apt-get install postgresql-$PG_VERSION first"
        exit 1
    fi
    log "installing postgresql-$PG_VERSION (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-$PG_VERSION" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "postgresql-$PG_VERSION" >&2; }
fi

# The server refuses to run as root: as root, the cluster belongs to the `postgres` user the package created.
if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER=$(id -un)
    as_owner() { "$@"; }
fi

DATA=$PG_DIR/data
SOCKET=$PG_DIR/socket
mkdir -p "$PG_DIR" "$SOCKET"
chown "$OWNER" "$PG_DIR" "$SOCKET"
chmod 700 "$PG_DIR"

if [ "${1:-}" = stop ]; then
    if [ -f "$DATA/postmaster.pid" ]; then as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2; fi
    exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >&2
fi

if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "starting on 127.0.0.1:$PG_PORT"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $SOCKET" >&2 \
        || { tail -n 20 "$PG_DIR/server.log" >&2; exit 1; }
fi

psql_admin() { as_owner "$BIN/psql" -h "$SOCKET" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
# CREATEDB: each test makes (and drops) its own database, so runs of one CI job never see each other's history
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi

cat <<EOF
export DAGSTER_PG_HOST=127.0.0.1
export DAGSTER_PG_PORT=$PG_PORT
export DAGSTER_PG_USER=$DB_USER
export DAGSTER_PG_PASSWORD=$DB_PASSWORD
export DAGSTER_PG_DB=$DB_NAME
export EDUGRAPH_POSTGRES_URL=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME
EOF
