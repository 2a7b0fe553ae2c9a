#!/usr/bin/env bash
# Runs keel's orders demo (examples/orders/cmd/orders-demo) against a
# PostgreSQL server, in this order of preference:
#
#   1. DATABASE_URL, when set: the demo creates a scratch database there and
#      drops it at the end; your own database is not written.
#   2. As root with Debian's pg_virtualenv: a throwaway cluster, removed after.
#   3. With initdb and pg_ctl on PATH (as a normal user): a throwaway cluster in
#      a temporary directory, on a Unix socket, stopped and removed after.
#   4. Otherwise what scripts/postgres.sh finds or starts, the script `make
#      test` uses too: a server on 127.0.0.1:5432 (the demo works in a scratch
#      database there), the machine's Debian cluster, or — when a Docker engine
#      answers — a throwaway container run by tools/pgcontainer, removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
demo=(./examples/orders/cmd/orders-demo)

if [ -n "${DATABASE_URL:-}" ]; then
	exec "$GO" run "${demo[@]}"
fi

if [ "$(id -u)" = 0 ] && command -v pg_virtualenv >/dev/null 2>&1; then
	echo "DATABASE_URL is not set: running the demo in a throwaway cluster (pg_virtualenv)" >&2
	"$GO" build -o /tmp/keel-orders-demo.$$ "${demo[@]}"
	trap 'rm -f /tmp/keel-orders-demo.$$' EXIT
	# pg_virtualenv sets PGHOST, PGPORT, PGUSER and PGPASSWORD; pgx reads them
	# when the connection string is empty.
	pg_virtualenv -o fsync=off sh -c '/tmp/keel-orders-demo.'$$
	exit
fi

find_pg_bin() {
	command -v "$1" 2>/dev/null && return
	ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
initdb=$(find_pg_bin initdb || true)
pg_ctl=$(find_pg_bin pg_ctl || true)
if [ "$(id -u)" != 0 ] && [ -n "$initdb" ] && [ -n "$pg_ctl" ]; then
	echo "DATABASE_URL is not set: running the demo in a throwaway cluster (initdb/pg_ctl)" >&2
	dir=$(mktemp -d)
	cleanup() {
		"$pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$dir"
	}
	trap cleanup EXIT
	"$initdb" -D "$dir/data" -U postgres -A trust >/dev/null
	"$pg_ctl" -D "$dir/data" -w -l "$dir/log" \
		-o "-c listen_addresses='' -k $dir -c fsync=off" start >/dev/null
	PGHOST=$dir PGPORT=5432 PGUSER=postgres PGDATABASE=postgres "$GO" run "${demo[@]}"
	exit
fi

# The demo is built first, so that a signal reaches the demo itself rather
# than a `go run` between it and scripts/postgres.sh.
"$GO" build -o /tmp/keel-orders-demo.$$ "${demo[@]}"
trap 'rm -f /tmp/keel-orders-demo.$$' EXIT
GO=$GO bash scripts/postgres.sh --run /tmp/keel-orders-demo.$$
