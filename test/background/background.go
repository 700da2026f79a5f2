// Package background runs a worker (a projection runner, the alert
// engine, the notifier, ...) for the length of a test.
package background

import (
	"context"
	"sync"
	"testing"
)

// Run starts run in a goroutine with a context that stop cancels; stop
// waits for run to return and gives its error, the same on every call.
// Cleanup calls stop and, when report is set, fails the test on an error.
func Run(tb testing.TB, report bool, run func(context.Context) error) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil && report {
			tb.Errorf("background worker: %v", err)
		}
	})
	return stop
}
