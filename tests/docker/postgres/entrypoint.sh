#!/bin/sh
# Entry point of the Debian PostgreSQL stand-in (Dockerfile beside this file): on an empty
# $PGDATA, initdb with POSTGRES_INITDB_ARGS, the superuser POSTGRES_USER (postgres) whose
# password is POSTGRES_PASSWORD, and the database POSTGRES_DB (named after the user); then the
# server, as the postgres user, listening on every address with password (SCRAM) logins.
set -eu

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream.
    as_postgres "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != "postgres" ]; then
        # Single-user mode reads SQL from stdin: no server is listening yet.
        printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$db" "$user" \
            | as_postgres "$bin/postgres" --single -D "$PGDATA" postgres > /dev/null
    fi
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
