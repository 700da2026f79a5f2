package backoff

import (
	"context"
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, time.Second}, {1, 2 * time.Second}, {2, 4 * time.Second}, {5, 32 * time.Second},
		{6, time.Minute}, {1000, time.Minute},
	}
	for _, tt := range tests {
		if got := Exp(time.Second, time.Minute, tt.failures); got != tt.want {
			t.Errorf("Exp(1s, 1m, %d) = %s, want %s", tt.failures, got, tt.want)
		}
	}
}

func TestJitterStaysInTheUpperHalf(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := Jitter(100 * time.Millisecond)
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("Jitter(100ms) = %s, want within [50ms, 100ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("Jitter gave %d distinct waits in 1000 calls: not random", len(seen))
	}
	if Jitter(0) != 0 {
		t.Fatal("Jitter(0) != 0")
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported an interruption without one")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep waited out an hour on a cancelled context")
	}
}
