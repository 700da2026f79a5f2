package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestParentCommandsAloneAreUsageErrors: a parent command without its
// subcommand, or with an unknown one, is a usage error (exit 2), never a
// crash.
func TestParentCommandsAloneAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"audit"}, {"audit", "nope"}, {"bench"}, {"bench", "nope"}, {"projections"}, {"followers"},
		{"events"}, {"events", "nope"}, {"users"}, {"config"}, {"nope"},
	} {
		var ue usageError
		if err := run(context.Background(), args); !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestEveryCommandHelpSucceeds: "coinledger CMD -h" prints that command's
// usage and succeeds (exit 0) for every command, parents included, without
// reading standard input or touching a store.
func TestEveryCommandHelpSucceeds(t *testing.T) {
	stdin := os.Stdin
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close() // a closed input: nothing may wait on it
	os.Stdin = r
	defer func() { os.Stdin = stdin; r.Close() }()
	t.Setenv("COINLEDGER_DATA_DIR", t.TempDir())
	for _, cmd := range [][]string{
		{"serve"}, {"notify"}, {"healthcheck"}, {"config", "show"}, {"help"},
		{"bench"}, {"bench", "store"}, {"bench", "transfers"}, {"bench", "reads"}, {"bench", "notify"}, {"bench", "replay"}, {"bench", "audit"},
		{"users"}, {"users", "add"}, {"users", "hash-password"}, {"users", "grant"},
		{"events", "export"}, {"events", "import"},
		{"projections"}, {"projections", "status"}, {"projections", "rebuild"},
		{"followers"}, {"followers", "list"},
		{"audit"}, {"audit", "verify"}, {"audit", "checkpoint"},
	} {
		args := append(append([]string{}, cmd...), "-h")
		if cmd[0] == "help" {
			args = cmd
		}
		var err error
		out := captureStdout(t, func() error { err = run(context.Background(), args); return nil })
		if err != nil {
			t.Errorf("%q: %v", args, err)
			continue
		}
		if !strings.Contains(out, "usage: coinledger") {
			t.Errorf("%q printed no usage:\n%s", args, out)
		}
	}
}

// TestParentsListTheirSubcommands: a parent command alone is a usage error
// that names what it can do.
func TestParentsListTheirSubcommands(t *testing.T) {
	for parent, subs := range map[string][]string{
		"bench": {"store", "transfers", "reads", "notify", "replay", "audit"},
		"audit": {"verify", "checkpoint", "public-key", "rotate-key", "verify-proof"},
		"users": {"add", "grant", "revoke", "hash-password", "disable", "enable", "import-graphene"},
	} {
		err := run(context.Background(), []string{parent})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("%s alone: %v, want a usage error", parent, err)
		}
		for _, sub := range subs {
			if !strings.Contains(err.Error(), sub) {
				t.Errorf("%s alone does not list %s:\n%v", parent, sub, err)
			}
		}
	}
}
