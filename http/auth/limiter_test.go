package auth

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustAllow(t *testing.T, l *Limiter, key string) {
	t.Helper()
	if ok, wait := l.Allow(key); !ok {
		t.Fatalf("Allow(%q) refused, retry after %v", key, wait)
	}
}

func mustRefuse(t *testing.T, l *Limiter, key string, wantWait time.Duration) {
	t.Helper()
	ok, wait := l.Allow(key)
	if ok {
		t.Fatalf("Allow(%q) allowed, want refused", key)
	}
	if wait != wantWait {
		t.Fatalf("Allow(%q) retry after %v, want %v", key, wait, wantWait)
	}
}

func TestLimiterDefaults(t *testing.T) {
	c := newClock()
	l := NewLimiter(0, 0, c.Now)
	for range DefaultLoginBurst {
		mustAllow(t, l, "user:alice")
	}
	mustRefuse(t, l, "user:alice", DefaultLoginPer)
	if NewLimiter(0, 0, nil).now == nil {
		t.Fatal("nil clock not defaulted")
	}
}

func TestLimiterBurstAndRefill(t *testing.T) {
	c := newClock()
	l := NewLimiter(3, 10*time.Second, c.Now)
	for range 3 {
		mustAllow(t, l, "ip:192.0.2.1")
	}
	mustRefuse(t, l, "ip:192.0.2.1", 10*time.Second)
	// Other keys are independent.
	mustAllow(t, l, "ip:192.0.2.2")

	// Retry-After counts down with the clock; refused calls cost nothing.
	c.Advance(4 * time.Second)
	mustRefuse(t, l, "ip:192.0.2.1", 6*time.Second)
	mustRefuse(t, l, "ip:192.0.2.1", 6*time.Second)
	c.Advance(6 * time.Second)
	mustAllow(t, l, "ip:192.0.2.1")
	mustRefuse(t, l, "ip:192.0.2.1", 10*time.Second)

	// One token per interval, never more than burst after a long pause.
	c.Advance(25 * time.Second)
	mustAllow(t, l, "ip:192.0.2.1")
	mustAllow(t, l, "ip:192.0.2.1")
	mustRefuse(t, l, "ip:192.0.2.1", 5*time.Second)
	c.Advance(time.Hour)
	for range 3 {
		mustAllow(t, l, "ip:192.0.2.1")
	}
	mustRefuse(t, l, "ip:192.0.2.1", 10*time.Second)
}

func TestLimiterSuccessIsFree(t *testing.T) {
	c := newClock()
	l := NewLimiter(2, time.Minute, c.Now)
	// Any number of successful logins in a row.
	for range 10 {
		mustAllow(t, l, "user:alice")
		l.Success("user:alice")
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("a key with a full bucket is kept: %d keys", n)
	}
	// Failures count; a success refunds only its own attempt.
	mustAllow(t, l, "user:alice")
	l.Failure("user:alice")
	mustAllow(t, l, "user:alice")
	l.Success("user:alice")
	mustAllow(t, l, "user:alice")
	l.Failure("user:alice")
	mustRefuse(t, l, "user:alice", time.Minute)
	// Success on an unknown key is harmless.
	l.Success("user:nobody")
	l.Failure("user:nobody")
	if n := l.Len(); n != 1 {
		t.Fatalf("%d keys, want 1", n)
	}
}

func TestLimiterClockBackwards(t *testing.T) {
	c := newClock()
	l := NewLimiter(1, time.Minute, c.Now)
	mustAllow(t, l, "k")
	c.Advance(-time.Hour)
	ok, wait := l.Allow("k")
	if ok || wait <= 0 {
		t.Fatalf("after the clock went back: ok=%v wait=%v", ok, wait)
	}
}

func TestLimiterEvictsIdleKeys(t *testing.T) {
	c := newClock()
	l := NewLimiter(5, 30*time.Second, c.Now)
	for i := range 100 {
		mustAllow(t, l, fmt.Sprintf("user:u%d", i))
	}
	// u0..u99 are full again after 30 s; locked needs 150 s.
	for range 5 {
		mustAllow(t, l, "user:locked")
	}
	if n := l.Len(); n != 101 {
		t.Fatalf("%d keys, want 101", n)
	}
	c.Advance(sweepEvery)
	mustAllow(t, l, "user:new")
	if n := l.Len(); n != 2 {
		t.Fatalf("after the sweep %d keys, want 2 (locked, new)", n)
	}
	// The surviving key kept its state: two tokens back after 60 s.
	mustAllow(t, l, "user:locked")
	mustAllow(t, l, "user:locked")
	mustRefuse(t, l, "user:locked", 30*time.Second)
}

func TestLimiterCapsKeys(t *testing.T) {
	c := newClock()
	l := NewLimiter(1, time.Hour, c.Now)
	l.MaxKeys = 10
	for i := range 10 {
		mustAllow(t, l, fmt.Sprintf("user:u%d", i))
		c.Advance(time.Second)
	}
	// u0 is used again, so u1 is now the least recently used.
	l.Failure("user:u0")
	// A spray of random usernames never grows the map past the cap…
	for i := range 1000 {
		mustAllow(t, l, fmt.Sprintf("user:spray%d", i))
		if n := l.Len(); n > 10 {
			t.Fatalf("%d keys, cap 10", n)
		}
	}
	// …and the oldest keys went first.
	l = NewLimiter(1, time.Hour, c.Now)
	l.MaxKeys = 3
	for _, k := range []string{"a", "b", "c"} {
		mustAllow(t, l, k)
	}
	l.Failure("a")
	mustAllow(t, l, "d") // evicts b
	mustRefuse(t, l, "a", time.Hour)
	mustRefuse(t, l, "c", time.Hour)
	// Refused attempts count as use: d is now the oldest.
	mustAllow(t, l, "b") // forgotten, so allowed again; evicts d
	mustRefuse(t, l, "a", time.Hour)
	mustRefuse(t, l, "c", time.Hour)
	mustAllow(t, l, "d")
}

func TestLimiterLongKeys(t *testing.T) {
	c := newClock()
	l := NewLimiter(1, time.Minute, c.Now)
	long := "user:" + strings.Repeat("x", 10000)
	mustAllow(t, l, long)
	mustRefuse(t, l, long, time.Minute)
	mustAllow(t, l, long+"y")
	for k := range l.keys {
		if len(k) > maxKeyLen {
			t.Fatalf("stored key of %d bytes", len(k))
		}
	}
}

func TestLimiterConcurrent(t *testing.T) {
	c := newClock()
	l := NewLimiter(5, 12*time.Second, c.Now)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 100 {
				if ok, _ := l.Allow("user:target"); ok {
					allowed.Add(1)
				}
				k := fmt.Sprintf("ip:%d.%d", g, i)
				if ok, _ := l.Allow(k); ok && i%2 == 0 {
					l.Success(k)
				} else {
					l.Failure(k)
				}
			}
		})
	}
	wg.Wait()
	// The clock stood still: exactly the burst got through, however many raced.
	if n := allowed.Load(); n != 5 {
		t.Fatalf("%d attempts allowed, want 5", n)
	}
	// Target plus the 1600 failed ip keys; the refunded ones are gone.
	if n := l.Len(); n != 1+32*50 {
		t.Fatalf("%d keys, want %d", n, 1+32*50)
	}
}

func TestLimiterConcurrentCap(t *testing.T) {
	c := newClock()
	l := NewLimiter(2, time.Second, c.Now)
	l.MaxKeys = 50
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				l.Allow(fmt.Sprintf("user:%d.%d", g, i%70))
				if i%50 == 0 {
					c.Advance(time.Minute)
				}
				if n := l.Len(); n > 50 {
					t.Errorf("%d keys, cap 50", n)
					return
				}
			}
		})
	}
	wg.Wait()
}
