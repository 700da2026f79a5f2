#!/usr/bin/env bash
# Runs every test of coinledger on a fresh machine: installs and starts the
# servers the tests need (a throwaway PostgreSQL cluster, Redis, mailpit, and
# the btcd/btcwallet binaries the chain tests start on simnet), then
# runs the whole Go test suite with the race detector, then stops the servers.
#
#   test/run.sh                 # everything
#   test/run.sh ./eventstore/...  # some packages (extra arguments go to go test)
#
# With CI set, a test that needs a server and cannot find it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

export CI=${CI:-true}
export GOFLAGS=${GOFLAGS:--buildvcs=false}

echo "== starting PostgreSQL" >&2
eval "$(test/pg.sh start)"
trap 'test/pg.sh stop >/dev/null 2>&1 || true; test/servers.sh stop >/dev/null 2>&1 || true' EXIT
export COINLEDGER_TEST_POSTGRES_URL
echo "== installing and starting Redis, mailpit (SMTP), btcd and btcwallet binaries" >&2
eval "$(test/servers.sh start)"
export PATH COINLEDGER_TEST_REDIS_ADDR COINLEDGER_TEST_SMTP_ADDR COINLEDGER_TEST_MAILPIT_URL

echo "== building" >&2
go build ./...
go vet ./...

echo "== go test -race" >&2
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
go test -race -count=1 -timeout 20m "${pkgs[@]}"
