package main

import (
	"context"
	"errors"
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
