#!/usr/bin/env bash
# Runs every test of coinledger on a fresh machine: installs and starts the
# servers the tests need (a throwaway PostgreSQL cluster on its own port), then
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
trap 'test/pg.sh stop >/dev/null 2>&1 || true' EXIT
export COINLEDGER_TEST_POSTGRES_URL

echo "== building" >&2
go build ./...
go vet ./...

echo "== go test -race" >&2
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
go test -race -count=1 -timeout 20m "${pkgs[@]}"
