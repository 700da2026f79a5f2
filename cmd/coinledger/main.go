// Command coinledger is the event-sourced custodial ledger service.
//
//	coinledger serve                 run the service (embedded stores in ./data by default)
//	coinledger bench store           measure the event store
//	coinledger bench transfers       measure transfers over HTTP (bench reads: account reads)
//	coinledger bench replay          measure rebuilds, export and import over a big log
//	coinledger bench audit           measure audit verify's chain and double-entry checks
//	coinledger projections status    show each read model's checkpoint and lag
//	coinledger projections list|rebuild|retry   act on the running server's read models
//	coinledger followers list|retry|skip        act on the running server's followers
//	coinledger audit verify          verify the log (chains, checkpoints, double entry, read models)
//	coinledger audit checkpoint|checkpoints|public-key|rotate-key|verify-proof
//	                                 signed checkpoints and proofs of liabilities
//	coinledger events export|import  move the event log between stores (NDJSON)
//
// Commands that need the store (users, events export, audit verify, audit
// checkpoint(s), projections status) go through the running server's admin
// API when it holds the embedded store's lock (remote.go).
//
// Configuration: a YAML file named by COINLEDGER_CONFIG (or -config), then
// COINLEDGER_* environment variables; see config.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coinledger/coinledger/internal/logging"
)

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
  bench audit            measure audit verify's checks (chains, double entry) over such a log
  projections status     checkpoint and lag of every read model
  projections list       the running server's projections: version, state, position, lag
  projections rebuild NAME... | -all
                         rebuild read models blue/green on the running server, with progress
  projections retry NAME resume a parked read model on the running server
  followers list         the running server's followers (alert engine, outbox, indexes, ...)
  followers retry NAME   resume a parked follower
  followers skip NAME    skip the event a parked side-effecting follower is stuck at
  audit verify           verify the log: chains, checkpoints, double entry, read models
  audit checkpoint       sign a checkpoint of the log now (checkpoints -o FILE: export them;
                         public-key -o FILE; rotate-key; verify-proof -proof F -account W/A -key K)
  events export|import   write the event log as NDJSON; import such a file into an empty store
  notify [-coin C] TXID  post a walletnotify to the running service (bitcoin.conf: walletnotify=coinledger notify %s)
  users ...              add users, grant and revoke, hash passwords, import Graphene maps
  config show            print the effective configuration (secrets redacted)
  version                print the version
  healthcheck            exit 0 when the server answers /readyz with 200 (for container healthchecks)

users, events export, audit verify and projections status work while a server runs: when it
holds the embedded store they go through its admin API. The commands that talk to the server
take -url (default http:// + COINLEDGER_LISTEN) and -token (default COINLEDGER_TOKEN, an admin
token or API key; else an admin login with COINLEDGER_ADMIN_PASSWORD).
"coinledger COMMAND -h" (or "coinledger COMMAND help") describes a command.

configuration: COINLEDGER_CONFIG (YAML file), COINLEDGER_LISTEN, COINLEDGER_DATA_DIR,
COINLEDGER_EVENT_STORE, COINLEDGER_READ_MODELS, COINLEDGER_ADMIN_PASSWORD, ...
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	_ = logOutput.Close() // before anything else reaches stderr
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue) && strings.Contains(err.Error(), "usage: coinledger"):
		// The error carries its command's usage.
		fmt.Fprintf(os.Stderr, "coinledger: %v", err)
		os.Exit(2)
	case errors.As(err, &ue) && len(os.Args) < 2:
		fmt.Fprintf(os.Stderr, "coinledger: %v\n\n%s", err, usage)
		os.Exit(2)
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "coinledger: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "coinledger: %v\n", err)
		os.Exit(1)
	}
}

// logOutput is where the logger writes: stderr, batched (see
// logging.Buffered); main flushes it before the process exits.
var logOutput = logging.NewBuffered(os.Stderr, 100*time.Millisecond)

// benchUsage lists the bench scenarios; it heads each scenario's help
// too (its flags follow).
const benchUsage = `usage: coinledger bench <scenario> [flags]

  store        the event store: durable appends, reads, projection catch-up
  transfers    internal transfers over HTTP against a per-request-commit baseline
  reads        account reads over HTTP
  notify       walletnotify ingestion to a confirmed deposit in the read models
  replay       rebuilds, export and import over a generated log
  audit        audit verify's checks over such a log

"coinledger bench SCENARIO -h" describes its flags. Each scenario prints its figures and,
as its last line, one JSON object.
`

type usageError string

func (e usageError) Error() string { return string(e) }

// parseFlags parses args with fs, flags and positional arguments in any
// order, and returns the positional ones. -h or --help prints usage and
// fs's flags on standard output and returns flag.ErrHelp, which run turns
// into success; a bad flag, or another number of positional arguments
// than want (when want >= 0), is a usageError.
func parseFlags(fs *flag.FlagSet, usage string, args []string, want int) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Stdout.WriteString(usage)
				fmt.Fprintf(os.Stdout, "\nflags of %s:\n", fs.Name())
				fs.SetOutput(os.Stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usageError(fmt.Sprintf("%s: %v (coinledger %s -h describes it)", fs.Name(), err, fs.Name()))
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if want >= 0 && len(pos) != want {
		return nil, usageError(fmt.Sprintf("%s: want %d arguments, got %d (coinledger %s -h describes it)", fs.Name(), want, len(pos), fs.Name()))
	}
	return pos, nil
}

// run runs the command args names; asking for help is a success.
func run(ctx context.Context, args []string) error {
	err := dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	logger, err := logging.New(logOutput, os.Getenv("COINLEDGER_LOG_FORMAT"), os.Getenv("COINLEDGER_LOG_LEVEL"))
	if err != nil {
		return fmt.Errorf("COINLEDGER_LOG_FORMAT/COINLEDGER_LOG_LEVEL: %w", err)
	}
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch {
	case cmd == "serve":
		return serve(ctx, logger, rest)
	case cmd == "bench" && (sub == "help" || sub == "-h" || sub == "--help"):
		os.Stdout.WriteString(benchUsage)
		return nil
	case cmd == "bench" && sub == "":
		return usageError("bench: name a scenario\n\n" + benchUsage)
	case cmd == "bench" && sub == "audit":
		return benchAudit(ctx, rest[1:])
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
	case cmd == "projections":
		return projectionsCmd(ctx, rest)
	case cmd == "followers":
		return followersCmd(ctx, rest)
	case cmd == "audit" && sub == "verify":
		return auditVerify(ctx, rest[1:])
	case cmd == "audit" && (sub == "help" || sub == "-h" || sub == "--help"):
		os.Stdout.WriteString(auditUsage + "\n" + auditSigningUsage)
		return nil
	case cmd == "audit" && sub == "":
		return usageError("audit: name a subcommand\n\n" + auditUsage + "\n" + auditSigningUsage)
	case cmd == "audit":
		if ok, err := auditSigningCmd(ctx, sub, rest[1:]); ok {
			return err
		}
	case cmd == "events":
		return eventsCmd(ctx, rest)
	case cmd == "users":
		return usersCmd(ctx, rest)
	case cmd == "notify":
		return notifyCmd(ctx, rest)
	case cmd == "config" && sub == "show":
		return configShow(rest[1:])
	case cmd == "healthcheck":
		return healthcheck(ctx, rest)
	case cmd == "version" || cmd == "--version":
		fmt.Println(version)
		return nil
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		os.Stdout.WriteString(usage)
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q (coinledger help lists the commands)", joinArgs(args)))
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
