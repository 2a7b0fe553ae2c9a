#!/usr/bin/env bash
# Finds (or starts) a PostgreSQL server on 127.0.0.1:5432 and prints the
# DATABASE_URL that keel's demo and tests should use.
#
#   scripts/postgres.sh            find or start a local server; print an export line
#   scripts/postgres.sh --url      the same, printing only the URL
#   scripts/postgres.sh --install  as root: also apt-get install postgresql when
#                                  missing, and give the postgres role a password
#                                  when TCP connections need one; prints only the
#                                  URL (used by CI)
set -euo pipefail

mode=${1:-}
host=127.0.0.1
port=5432
say() { echo "$@" >&2; }

listening() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h "$host" -p "$port"
	else
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
	fi
}

wait_listening() {
	for _ in $(seq 1 60); do
		listening && return 0
		sleep 0.5
	done
	return 1
}

start_debian_cluster() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 1
	local ver
	ver=$(pg_lsclusters -h | awk '$3 == '"$port"' {print $1; exit}')
	if [ -z "$ver" ] && [ "$(id -u)" = 0 ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
		pg_createcluster --port "$port" "$ver" main >/dev/null
	fi
	[ -n "$ver" ] || return 1
	say "starting PostgreSQL $ver (cluster main)"
	if [ "$(id -u)" = 0 ]; then
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
	else
		pg_ctlcluster "$ver" main start || true
	fi
	wait_listening
}

install_debian() {
	[ "$mode" = "--install" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
	say "installing PostgreSQL from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq postgresql >/dev/null
}

if ! listening; then
	start_debian_cluster || { install_debian && start_debian_cluster; } || {
		cat >&2 <<'MSG'
No PostgreSQL answers on 127.0.0.1:5432, and none could be started here.
Install one (Debian/Ubuntu: sudo apt-get install postgresql), or run one in Docker:
  docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16
or point keel at any server you have:
  export DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/DATABASE'
MSG
		exit 1
	}
fi

url="postgres://postgres@$host:$port/postgres?sslmode=disable"
if ! psql -w "$url" -Atc 'SELECT 1' >/dev/null 2>&1; then
	if [ "$mode" = "--install" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
		# A fresh Debian cluster asks TCP clients for a password; give the
		# postgres role one, over the local socket where peer auth applies.
		(cd / && su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\"")
		url="postgres://postgres:postgres@$host:$port/postgres?sslmode=disable"
	fi
	if ! psql -w "$url" -Atc 'SELECT 1' >/dev/null 2>&1; then
		echo "PostgreSQL answers on $host:$port but not as role postgres without a password;" >&2
		echo "set DATABASE_URL to a role that may create databases, e.g. postgres://USER:PASSWORD@$host:$port/postgres" >&2
		exit 1
	fi
fi

if [ -n "$mode" ]; then
	echo "$url"
else
	say "PostgreSQL is running on $host:$port. Use it with:"
	echo "export DATABASE_URL='$url'"
fi
