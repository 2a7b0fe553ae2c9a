#!/usr/bin/env bash
# Finds (or starts) the PostgreSQL server keel's tests and demo use: a server
# on 127.0.0.1:5432, else the machine's Debian cluster started (or, as root,
# created) on that port, else — when a Docker engine answers — a throwaway
# container run by tools/pgcontainer (a Go module of its own, so that keel's
# go.mod carries no Docker client). `make test`, `make demo` and `make db`
# all come here.
#
#   scripts/postgres.sh              find or start a server; print an export
#                                    line (a container stays until Ctrl-C)
#   scripts/postgres.sh --url        a local server only; print only its URL
#   scripts/postgres.sh --install    as root: also apt-get install postgresql when
#                                    missing, and give the postgres role a password
#                                    when TCP connections need one; prints only the
#                                    URL (used by CI)
#   scripts/postgres.sh --run CMD [ARG...]
#                                    run CMD with DATABASE_URL set: the one already
#                                    set, else a server found or started as above;
#                                    a container is removed when CMD ends, and the
#                                    exit status is CMD's
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
mode=${1:-}
case $mode in
"" | --url | --install) ;;
--run)
	shift
	[ $# -gt 0 ] || { echo "usage: $0 --run COMMAND [ARG...]" >&2; exit 2; }
	;;
*)
	echo "usage: $0 [--url | --install | --run COMMAND [ARG...]]" >&2
	exit 2
	;;
esac
host=127.0.0.1
port=5432
say() { echo "$@" >&2; }

if [ "$mode" = --run ] && [ -n "${DATABASE_URL:-}" ]; then
	say "$* (DATABASE_URL is set)"
	exec "$@"
fi

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

# docker_answers reports whether a Docker engine answers: through the docker
# CLI when there is one, else by the socket testcontainers would use.
docker_answers() {
	if command -v docker >/dev/null 2>&1; then
		timeout 20 docker info >/dev/null 2>&1
	else
		[ -n "${DOCKER_HOST:-}" ] || [ -S /var/run/docker.sock ]
	fi
}

# pgcontainer builds tools/pgcontainer into bin/ (the first build downloads
# testcontainers-go and Docker's client) and runs it with the arguments given.
pgcontainer() {
	say "no PostgreSQL on $host:$port: starting one in a throwaway Docker container (tools/pgcontainer)"
	(cd "$root/tools/pgcontainer" && "$GO" build -o "$root/bin/pgcontainer" .) || exit 1
	exec "$root/bin/pgcontainer" "$@"
}

# local_server sets url to a local server that answers, starting one when it
# can; it fails when there is none.
local_server() {
	if ! listening; then
		start_debian_cluster || { install_debian && start_debian_cluster; } || return 1
	fi
	url="postgres://postgres@$host:$port/postgres?sslmode=disable"
	command -v psql >/dev/null 2>&1 || return 0
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
}

if local_server; then
	case $mode in
	--run)
		say "$* (DATABASE_URL=$url)"
		DATABASE_URL=$url exec "$@"
		;;
	--url | --install) echo "$url" ;;
	*)
		say "PostgreSQL is running on $host:$port. Use it with:"
		echo "export DATABASE_URL='$url'"
		;;
	esac
	exit 0
fi

# A container lives as long as the process that runs it, so --url and
# --install, which only print a URL, do not start one.
if [ "$mode" != --url ] && [ "$mode" != --install ] && docker_answers; then
	if [ "$mode" = --run ]; then
		pgcontainer -- "$@"
	fi
	say "PostgreSQL runs in the container until you press Ctrl-C. Use it with:"
	pgcontainer -export
fi

if [ "$mode" = --run ]; then
	# One line: make test and make demo print nothing else when they stop here.
	say "keel needs PostgreSQL: none answers on $host:$port, none could be started here and no Docker engine answers; set DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/postgres' (a role that may create databases), install PostgreSQL (Debian/Ubuntu: sudo apt-get install postgresql) or start Docker"
	exit 1
fi
cat >&2 <<'MSG'
No PostgreSQL answers on 127.0.0.1:5432, and none could be started here.
Install one (Debian/Ubuntu: sudo apt-get install postgresql), or start a
Docker engine (then this script runs one in a container), or run one yourself:
  docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16
or point keel at any server you have:
  export DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/DATABASE'
MSG
exit 1
