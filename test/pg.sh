#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 cluster for the test suites.
#
#   eval "$(test/pg.sh)"        # start (or reuse) the cluster, export COINLEDGER_TEST_POSTGRES_URL
#   test/pg.sh stop             # stop it and delete its data
#   test/pg.sh status           # print the export line if it runs, exit 1 otherwise
#
# The cluster lives in $COINLEDGER_PG_DIR (default /tmp/coinledger-pg), listens on
# 127.0.0.1 only, on the first free port from $COINLEDGER_PG_PORT (default 25432),
# trusts every local connection and runs with fsync off: it is for tests only.
# Only the export line goes to stdout; progress goes to stderr.
set -euo pipefail

DIR=${COINLEDGER_PG_DIR:-/tmp/coinledger-pg}
BASE_PORT=${COINLEDGER_PG_PORT:-25432}
BIN=/usr/lib/postgresql/15/bin
DB=coinledger_test

log() { echo "pg.sh: $*" >&2; }

# as_pg runs a command as the postgres user when we are root (initdb refuses
# to run as root), or as ourselves otherwise.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

url() { echo "postgres://postgres@127.0.0.1:$1/$DB?sslmode=disable"; }

running_port() {
	[ -f "$DIR/port" ] && [ -f "$DIR/data/postmaster.pid" ] || return 1
	as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1 || return 1
	cat "$DIR/port"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install() {
	[ -x "$BIN/initdb" ] && return 0
	log "installing postgresql (apt-get)"
	if [ "$(id -u)" != 0 ]; then
		log "PostgreSQL 15 is missing and only root can install it"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq postgresql-15 >&2 || apt-get install -y -qq postgresql >&2
	[ -x "$BIN/initdb" ] || { log "no $BIN/initdb after install"; exit 1; }
}

start() {
	if port=$(running_port); then
		log "already running on port $port ($DIR)"
		echo "export COINLEDGER_TEST_POSTGRES_URL='$(url "$port")'"
		return
	fi
	install
	rm -rf "$DIR"
	mkdir -p "$DIR"
	if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DIR"; fi
	port=$BASE_PORT
	while ! port_free "$port"; do
		port=$((port + 1))
		[ "$port" -lt $((BASE_PORT + 100)) ] || { log "no free port in $BASE_PORT..$((BASE_PORT + 99))"; exit 1; }
	done
	as_pg "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; exit 1; }
	# Enough connections for parallel test packages, each with its own pool.
	as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start \
		-o "-p $port -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >&2 ||
		{ cat "$DIR/log" >&2; exit 1; }
	as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB"
	echo "$port" >"$DIR/port"
	log "started on port $port ($DIR)"
	echo "export COINLEDGER_TEST_POSTGRES_URL='$(url "$port")'"
}

stop() {
	if [ -f "$DIR/data/postmaster.pid" ]; then
		as_pg "$BIN/pg_ctl" -D "$DIR/data" -w stop -m fast >&2 || true
	fi
	rm -rf "$DIR"
	log "stopped"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status)
	port=$(running_port) || { log "not running"; exit 1; }
	echo "export COINLEDGER_TEST_POSTGRES_URL='$(url "$port")'"
	;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac
