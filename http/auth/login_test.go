package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustBegin(t *testing.T, g *LoginGuard, account, address string) *Attempt {
	t.Helper()
	a, retry, ok := g.Begin(account, address)
	if !ok {
		t.Fatalf("Begin(%q, %q) refused, retry after %v", account, address, retry)
	}
	return a
}

func mustHoldBack(t *testing.T, g *LoginGuard, account, address string) time.Duration {
	t.Helper()
	_, retry, ok := g.Begin(account, address)
	if ok {
		t.Fatalf("Begin(%q, %q) admitted, want held back", account, address)
	}
	if retry <= 0 {
		t.Fatalf("Begin(%q, %q) held back with retry %v", account, address, retry)
	}
	return retry
}

// TestLoginGuardStrangerCannotLockOutUser: an attacker trying two
// passwords a second against admin from one address for an hour is held
// back to the strict (account, address) rate; the real admin, from another
// address, is admitted at any moment of the attack, at once.
func TestLoginGuardStrangerCannotLockOutUser(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{}, c.Now)
	admitted := 0
	for i := range 2 * 3600 {
		if a, _, ok := g.Begin("admin", "203.0.113.7"); ok {
			admitted++
			a.Failed()
		}
		if i%600 == 0 {
			mustBegin(t, g, "admin", "198.51.100.1").Succeeded()
		}
		c.Advance(500 * time.Millisecond)
	}
	// 5 at once, then one per 12 s at most, and fewer once the account's
	// backoff holds the attacker's (suspect) address back.
	if max := DefaultLoginBurst + 3600/12; admitted > max || admitted < DefaultLoginBurst {
		t.Fatalf("attacker admitted %d times in an hour, want %d..%d", admitted, DefaultLoginBurst, max)
	}
	mustBegin(t, g, "admin", "198.51.100.1").Succeeded()
	// The attacker is still held back, and an address the attacker never
	// used for this account is not.
	mustHoldBack(t, g, "admin", "203.0.113.7")
	mustBegin(t, g, "admin", "198.51.100.2").Succeeded()
}

// TestLoginGuardPairLimit: the strict limit is per account and address:
// the same address may still try another account, and a success gives the
// attempt back.
func TestLoginGuardPairLimit(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{}, c.Now)
	for range 4 {
		mustBegin(t, g, "alice", "a").Failed()
	}
	mustBegin(t, g, "alice", "a").Succeeded() // a typo or four, then the right password
	mustBegin(t, g, "alice", "a").Failed()
	if retry := mustHoldBack(t, g, "alice", "a"); retry != DefaultLoginPer {
		t.Fatalf("retry after %v, want %v", retry, DefaultLoginPer)
	}
	mustBegin(t, g, "bob", "a").Failed()
	c.Advance(DefaultLoginPer)
	mustBegin(t, g, "alice", "a").Failed()
}

// TestLoginGuardAddressLimit: one address spraying many accounts is held
// back after AddressBurst failures, whatever the accounts.
func TestLoginGuardAddressLimit(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{AddressBurst: 8, AddressPer: 10 * time.Second}, c.Now)
	for i := range 8 {
		mustBegin(t, g, fmt.Sprintf("user%d", i), "a").Failed()
	}
	if retry := mustHoldBack(t, g, "user99", "a"); retry != 10*time.Second {
		t.Fatalf("retry after %v", retry)
	}
	mustBegin(t, g, "user99", "b").Succeeded()
}

// TestLoginGuardAccountBackoff: many addresses failing on one account (a
// distributed guesser) make the account back off exponentially — for the
// addresses that failed on it only. A fresh address is admitted at once,
// and its success does not clear the attack's count.
func TestLoginGuardAccountBackoff(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{AccountFree: 3, BackoffBase: time.Second, BackoffMax: 8 * time.Second}, c.Now)
	bot := func(i int) string { return fmt.Sprintf("10.0.0.%d", i) }
	for i := range 3 {
		mustBegin(t, g, "admin", bot(i)).Failed()
	}
	// Within the free failures: a failed address may try again at once.
	mustBegin(t, g, "admin", bot(0)).Failed() // failure 4: 1 s
	if retry := mustHoldBack(t, g, "admin", bot(1)); retry != time.Second {
		t.Fatalf("after 4 failures: retry %v, want 1s", retry)
	}
	mustBegin(t, g, "admin", "192.0.2.1").Succeeded()
	for n, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		c.Advance(time.Minute)
		mustBegin(t, g, "admin", bot(1)).Failed()
		if retry := mustHoldBack(t, g, "admin", bot(2)); retry != want {
			t.Fatalf("after %d failures: retry %v, want %v", 5+n, retry, want)
		}
		mustBegin(t, g, "admin", fmt.Sprintf("192.0.2.%d", 2+n)).Succeeded() // a fresh address: admitted
		c.Advance(want)
	}
	// Forgotten after Forget without failures.
	c.Advance(DefaultLoginPolicy().Forget)
	mustBegin(t, g, "admin", bot(1)).Failed()
	mustBegin(t, g, "admin", bot(1)).Failed()
}

// TestLoginGuardBackoffSlotIsExclusive: while an account backs off,
// concurrent attempts from suspect addresses get one slot per delay, and a
// success gives the slot back.
func TestLoginGuardBackoffSlotIsExclusive(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{AccountFree: 1, BackoffMax: time.Hour, Forget: 2 * time.Hour, PairBurst: 100, AddressBurst: 100}, c.Now)
	for i := range 20 {
		mustBegin(t, g, "admin", fmt.Sprintf("a%d", i)).Failed()
	}
	c.Advance(time.Hour)
	var admitted atomic.Int64
	var held []*Attempt
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if a, _, ok := g.Begin("admin", fmt.Sprintf("a%d", i)); ok {
				admitted.Add(1)
				mu.Lock()
				held = append(held, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 1 {
		t.Fatalf("%d concurrent suspect attempts admitted, want 1", admitted.Load())
	}
	held[0].Succeeded()
	mustBegin(t, g, "admin", "a3").Failed()
}

// TestLoginGuardUnproven: logins that prove nothing (the wildcard user)
// are limited per address like failures, without slowing the account for
// other addresses.
func TestLoginGuardUnproven(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{}, c.Now)
	for range DefaultLoginBurst {
		mustBegin(t, g, "anonymous", "a").Unproven()
	}
	mustHoldBack(t, g, "anonymous", "a")
	mustBegin(t, g, "anonymous", "b").Unproven()
}

// TestLoginGuardAbandonedKeepsSuspect: an abandoned attempt gives its
// tokens back but, unlike a success, does not clear its address's mark on
// the account: the address stays held back by the account's backoff.
func TestLoginGuardAbandonedKeepsSuspect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		settle  func(*Attempt)
		suspect bool
	}{
		{"abandoned", (*Attempt).Abandoned, true},
		{"succeeded", (*Attempt).Succeeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			g := NewLoginGuard(LoginPolicy{AccountFree: 1, BackoffBase: time.Minute}, c.Now)
			mustBegin(t, g, "alice", "a").Failed() // a is suspect on alice
			tc.settle(mustBegin(t, g, "alice", "a"))
			mustBegin(t, g, "alice", "b").Failed() // alice's backoff starts
			if tc.suspect {
				mustHoldBack(t, g, "alice", "a")
			} else {
				mustBegin(t, g, "alice", "a").Succeeded()
			}
		})
	}
}

func TestLoginGuardMemoryIsBounded(t *testing.T) {
	c := newClock()
	g := NewLoginGuard(LoginPolicy{MaxKeys: 64, AddressBurst: 1 << 20}, c.Now)
	for i := range 1000 {
		mustBegin(t, g, fmt.Sprintf("user%d", i), "a").Failed()
	}
	if g.pair.Len() > 64 || len(g.account.m) > 64 || len(g.suspect.m) > 64 || g.account.lru.Len() != len(g.account.m) {
		t.Fatalf("tables hold %d, %d, %d keys, want at most 64", g.pair.Len(), len(g.account.m), len(g.suspect.m))
	}
}
