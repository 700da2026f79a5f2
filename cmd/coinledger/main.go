// Command coinledger is the event-sourced custodial ledger service.
//
//	coinledger serve                 run the service (embedded stores in ./data by default)
//	coinledger bench store           measure the event store
//	coinledger bench transfers       measure transfers over HTTP (bench reads: account reads)
//	coinledger bench replay          measure rebuilds, export and import over a big log
//	coinledger projections status    show each read model's checkpoint and lag
//	coinledger projections retry N   resume a parked read model on the running server
//	coinledger audit verify          verify every stream's hash chain
//	coinledger events export|import  move the event log between stores (NDJSON)
//
// Configuration: a YAML file named by COINLEDGER_CONFIG (or -config), then
// COINLEDGER_* environment variables; see config.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: coinledger <command> [arguments]

commands:
  serve                  run the service
  bench store            measure the event store (durable appends, reads, projection catch-up)
  bench transfers        measure internal transfers over HTTP against a per-request-commit baseline
                         (server as its own process; -against OTHER_BINARY, -rounds K, -rate R for open loop)
  bench reads            measure account reads over HTTP (server as its own process; same flags)
  bench notify           measure walletnotify ingestion to a confirmed deposit in the read models (null backend)
  bench replay           measure rebuilding the wallet read models (SQLite; Postgres with -postgres URL), export
                         and import over a generated log of wallet traffic (-events N, default 1,000,000)
  projections status     checkpoint and lag of every read model
  projections retry NAME resume a parked read model on the running server
                         (-url, default http://COINLEDGER_LISTEN; -token or COINLEDGER_TOKEN, an admin token,
                         else login as admin with COINLEDGER_ADMIN_PASSWORD)
  audit verify           verify the hash chain of every stream
  events export|import   write the event log as NDJSON; import such a file into an empty store
  notify [-coin C] TXID  post a walletnotify to the running service (bitcoin.conf: walletnotify=coinledger notify %s)
  users ...              add users, grant and revoke, hash passwords, import Graphene maps
  config show            print the effective configuration (secrets redacted)
  version                print the version

configuration: COINLEDGER_CONFIG (YAML file), COINLEDGER_LISTEN, COINLEDGER_DATA_DIR,
COINLEDGER_EVENT_STORE, COINLEDGER_READ_MODELS, COINLEDGER_ADMIN_PASSWORD, ...
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "coinledger: %v\n\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "coinledger: %v\n", err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch {
	case cmd == "serve":
		return serve(ctx, logger, rest)
	case cmd == "bench" && sub == "store":
		return benchStore(ctx, rest[1:])
	case cmd == "bench" && sub == "transfers":
		return benchTransfers(ctx, rest[1:])
	case cmd == "bench" && sub == "reads":
		return benchReads(ctx, rest[1:])
	case cmd == "bench" && sub == "server":
		return benchServer(ctx, logger, rest[1:])
	case cmd == "bench" && sub == "notify":
		return benchNotify(ctx, rest[1:])
	case cmd == "bench" && sub == "replay":
		return benchReplay(ctx, rest[1:])
	case cmd == "projections" && sub == "status":
		return projectionsStatus(ctx, rest[1:])
	case cmd == "projections" && sub == "retry":
		return projectionsRetry(ctx, rest[1:])
	case cmd == "audit" && sub == "verify":
		return auditVerify(ctx, rest[1:])
	case cmd == "events":
		return eventsCmd(ctx, rest)
	case cmd == "users":
		return usersCmd(ctx, rest)
	case cmd == "notify":
		return notifyCmd(ctx, rest)
	case cmd == "config" && sub == "show":
		return configShow(rest[1:])
	case cmd == "version":
		fmt.Println(version)
		return nil
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		os.Stdout.WriteString(usage)
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q", joinArgs(args)))
}

func joinArgs(args []string) string {
	if len(args) > 2 {
		args = args[:2]
	}
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
