package loadgen

import (
	"errors"
	"sync/atomic"
	"testing"
)

// TestOpenRunsEveryOperationOnce: the open-loop driver runs each operation
// exactly once, returns one latency per operation and the first error
// without stopping the others.
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
	if len(lat) != n || elapsed <= 0 {
		t.Errorf("%d latencies in %v, want %d", len(lat), elapsed, n)
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Errorf("operation %d ran %d times", i, c)
		}
	}
}
