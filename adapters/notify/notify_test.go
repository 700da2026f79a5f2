package notify_test

import (
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		failed int
		want   time.Duration
		retry  bool
	}{
		{-1, 0, true},
		{0, 0, true},
		{1, 10 * time.Second, true},
		{2, time.Minute, true},
		{3, 10 * time.Minute, true},
		{7, 10 * time.Minute, true},
		{8, 0, false},
		{9, 0, false},
		{1 << 30, 0, false},
	}
	for _, tt := range tests {
		got, retry := notify.Backoff(tt.failed)
		if got != tt.want || retry != tt.retry {
			t.Errorf("Backoff(%d) = %v, %v; want %v, %v", tt.failed, got, retry, tt.want, tt.retry)
		}
	}
}

// TestBackoffSchedule checks the schedule as a whole: exactly MaxAttempts
// attempts, spread over 10 s + 1 min + 5 × 10 min.
func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	var total time.Duration
	attempts := 1 // the first attempt
	for failed := 1; ; failed++ {
		d, retry := notify.Backoff(failed)
		if !retry {
			break
		}
		total += d
		attempts++
		if attempts > 100 {
			t.Fatal("Backoff never gives up")
		}
	}
	if attempts != notify.MaxAttempts {
		t.Errorf("attempts = %d, want %d", attempts, notify.MaxAttempts)
	}
	if want := 10*time.Second + time.Minute + 50*time.Minute; total != want {
		t.Errorf("total wait = %v, want %v", total, want)
	}
}
