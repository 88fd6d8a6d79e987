#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: loopback only, trust auth, its sockets in DIR.
#
#   scripts/test_postgres.sh start DIR   # initdb + start; prints the server URL (also in DIR/url)
#   scripts/test_postgres.sh stop DIR    # stops it; DIR can then be removed
#
# .ci/run exports the printed URL as AUTOW2S_TEST_PG_URL so every pytest worker shares one cluster;
# tests/pg_helpers.py starts one the same way when that variable is unset. PostgreSQL refuses to run
# as root, so as root the cluster runs as the `postgres` user (Debian's package creates it) or `nobody`.
# Durability is off (fsync, synchronous_commit) unless AUTOW2S_PG_DURABLE=1: the cluster dies with the test run.
set -euo pipefail
usage="usage: $0 start|stop DIR"
action=${1:?$usage}
dir=${2:?$usage}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] && command -v pg_ctl >/dev/null; then bin=$(dirname "$(command -v pg_ctl)"); fi
if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed (Debian/Ubuntu: sudo apt-get install postgresql)" >&2
    exit 3
fi

user=$(id -un)
if [ "$(id -u)" = 0 ]; then
    user=postgres
    id postgres >/dev/null 2>&1 || user=nobody
fi
as_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# AUTOW2S_PG_DURABLE=1 keeps PostgreSQL's default durability (benchmarks/lab_server.py compares it with SQLite FULL).
durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${AUTOW2S_PG_DURABLE:-}" = 1 ] && durability=""

case "$action" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" = 0 ] && chown "$user" "$dir"
    as_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    for _attempt in 1 2 3; do  # a free port can be taken between choosing it and binding it
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        if as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start -o \
            "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 \
             $durability" >/dev/null; then
            url="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
            echo "$url" >"$dir/url"
            echo "$url"
            exit 0
        fi
    done
    tail -n 20 "$dir/postgres.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac
