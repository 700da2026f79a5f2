#!/usr/bin/env bash
# Installs and starts the servers the tests need besides PostgreSQL (see
# test/pg.sh): Redis and the mailpit SMTP server, and installs the btcd,
# btcctl and btcwallet binaries the chain tests start themselves (simnet).
#
#   eval "$(test/servers.sh start)"   # install what is missing, start, print export lines
#   test/servers.sh stop              # stop them and delete their data
#
# Exports COINLEDGER_TEST_REDIS_ADDR, COINLEDGER_TEST_SMTP_ADDR,
# COINLEDGER_TEST_MAILPIT_URL and puts the Go tools on PATH. Only the export
# lines go to stdout; progress goes to stderr. Everything listens on
# 127.0.0.1 only and is for tests only.
set -euo pipefail

DIR=${COINLEDGER_SERVERS_DIR:-/tmp/coinledger-servers}
GOBIN=${COINLEDGER_TOOLS_BIN:-$(go env GOPATH)/bin}
BTCD_VERSION=v0.24.2
BTCWALLET_VERSION=v0.16.10-0.20240718224643-db3a4a2543bd
MAILPIT_VERSION=v1.27.11

log() { echo "servers.sh: $*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}

wait_port() {
	for _ in $(seq 1 100); do
		port_free "$1" || return 0
		sleep 0.1
	done
	log "nothing listens on port $1 after 10 s"
	return 1
}

install_go_tools() {
	local want=()
	[ -x "$GOBIN/btcd" ] || want+=("github.com/btcsuite/btcd@$BTCD_VERSION")
	[ -x "$GOBIN/btcctl" ] || want+=("github.com/btcsuite/btcd/cmd/btcctl@$BTCD_VERSION")
	[ ${#want[@]} -eq 0 ] || { log "go install ${want[*]}"; GOBIN=$GOBIN GOFLAGS= go install "${want[@]}" >&2; }
	[ -x "$GOBIN/btcwallet" ] || { log "go install btcwallet"; GOBIN=$GOBIN GOFLAGS= go install "github.com/btcsuite/btcwallet@$BTCWALLET_VERSION" >&2; }
	[ -x "$GOBIN/mailpit" ] || { log "go install mailpit"; GOBIN=$GOBIN GOFLAGS= go install "github.com/axllent/mailpit@$MAILPIT_VERSION" >&2; }
}

install_redis() {
	command -v redis-server >/dev/null && return 0
	[ "$(id -u)" = 0 ] || { log "redis-server is missing and only root can install it"; exit 1; }
	log "installing redis-server (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq redis-server >&2 || { apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2; }
}

start() {
	mkdir -p "$DIR"
	install_redis
	install_go_tools
	local redis smtp web
	if [ -f "$DIR/redis.port" ] && ! port_free "$(cat "$DIR/redis.port")"; then
		redis=$(cat "$DIR/redis.port")
	else
		redis=$(free_port 26399)
		redis-server --port "$redis" --bind 127.0.0.1 --daemonize yes --dir "$DIR" \
			--pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --save "" --appendonly no >&2
		wait_port "$redis"
		echo "$redis" >"$DIR/redis.port"
		log "redis on 127.0.0.1:$redis"
	fi
	if [ -f "$DIR/mailpit.ports" ] && ! port_free "$(cut -d' ' -f1 "$DIR/mailpit.ports")"; then
		read -r smtp web <"$DIR/mailpit.ports"
	else
		smtp=$(free_port 21025)
		web=$(free_port 28025)
		nohup "$GOBIN/mailpit" --smtp "127.0.0.1:$smtp" --listen "127.0.0.1:$web" --disable-version-check \
			--smtp-auth-accept-any --smtp-auth-allow-insecure >"$DIR/mailpit.log" 2>&1 &
		echo $! >"$DIR/mailpit.pid"
		wait_port "$smtp"
		wait_port "$web"
		echo "$smtp $web" >"$DIR/mailpit.ports"
		log "mailpit SMTP on 127.0.0.1:$smtp, API on 127.0.0.1:$web"
	fi
	echo "export PATH='$GOBIN':\"\$PATH\""
	echo "export COINLEDGER_TEST_REDIS_ADDR='127.0.0.1:$redis'"
	echo "export COINLEDGER_TEST_SMTP_ADDR='127.0.0.1:$smtp'"
	echo "export COINLEDGER_TEST_MAILPIT_URL='http://127.0.0.1:$web'"
}

stop() {
	[ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
	[ -f "$DIR/mailpit.pid" ] && kill "$(cat "$DIR/mailpit.pid")" 2>/dev/null || true
	rm -rf "$DIR"
}

case ${1:-start} in
start) start ;;
stop) stop ;;
*) log "usage: $0 start|stop"; exit 2 ;;
esac
