// Package backoff is the one home of the waits between retries: an
// exponential delay with a cap, jitter, and a sleep that ends with its
// context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exp returns lo doubled once per earlier failure (0 failures: lo), capped
// at hi.
func Exp(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 0; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Jitter returns a random wait in [d/2, d]: the upper half of d jittered,
// so that many retrying clients do not wake together.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d; it reports false when ctx is done first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
