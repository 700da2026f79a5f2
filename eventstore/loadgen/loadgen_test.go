package loadgen

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenRunsEveryOperationOnce: the open-loop driver runs each operation
// exactly once at the given rate, measures each one's latency and returns
// the first error without stopping the others.
func TestOpenRunsEveryOperationOnce(t *testing.T) {
	const n = 200
	var seen [n]atomic.Int32
	boom := errors.New("boom")
	lat, elapsed, err := Open(10_000, n, func(i int) error {
		seen[i].Add(1)
		if i == 7 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	// The last operation is due (n-1)/rate after the start: a driver that
	// does not pace the arrivals finishes sooner.
	if least := (n - 1) * time.Second / 10_000; elapsed < least {
		t.Errorf("ran %d operations at 10000/s in %v, want at least %v", n, elapsed, least)
	}
	for i, d := range lat {
		if d <= 0 {
			t.Errorf("operation %d: latency %v not measured", i, d)
		}
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Errorf("operation %d ran %d times", i, c)
		}
	}
}
