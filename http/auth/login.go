package auth

import (
	"container/list"
	"sync"
	"time"
)

// LoginPolicy tunes a LoginGuard. Zero fields take the defaults of
// DefaultLoginPolicy.
type LoginPolicy struct {
	// PairBurst failed attempts per (account, address) at once, then one
	// more every PairPer: the strict limit.
	PairBurst int
	PairPer   time.Duration
	// AddressBurst failed attempts per address, across accounts, then one
	// more every AddressPer: a password spray from one address.
	AddressBurst int
	AddressPer   time.Duration
	// AccountFree failed attempts per account, from any addresses, before
	// the account's backoff starts; then the delay is BackoffBase, doubled
	// with every further failure, at most BackoffMax.
	AccountFree int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Forget: an account's failures, and the mark of an address that
	// failed on it, are forgotten this long after the last failure.
	Forget time.Duration
	// MaxKeys bounds each of the guard's tables (see Limiter.MaxKeys).
	MaxKeys int
}

// DefaultLoginPolicy: 5 failures per account and address, then one every
// 12 s; 20 per address, then one every 5 s; an account's backoff starts
// after 10 failures (1 s, 2 s, 4 s, … up to 5 min) and is forgotten after
// 15 quiet minutes.
func DefaultLoginPolicy() LoginPolicy {
	return LoginPolicy{
		PairBurst: DefaultLoginBurst, PairPer: DefaultLoginPer,
		AddressBurst: 20, AddressPer: 5 * time.Second,
		AccountFree: 10, BackoffBase: time.Second, BackoffMax: 5 * time.Minute,
		Forget:  15 * time.Minute,
		MaxKeys: DefaultMaxKeys,
	}
}

func (p *LoginPolicy) setDefaults() {
	d := DefaultLoginPolicy()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&p.PairBurst, d.PairBurst)
	setD(&p.PairPer, d.PairPer)
	set(&p.AddressBurst, d.AddressBurst)
	setD(&p.AddressPer, d.AddressPer)
	set(&p.AccountFree, d.AccountFree)
	setD(&p.BackoffBase, d.BackoffBase)
	setD(&p.BackoffMax, d.BackoffMax)
	setD(&p.Forget, d.Forget)
	set(&p.MaxKeys, d.MaxKeys)
}

// LoginGuard rate limits password logins so that guessing is slow while a
// stranger cannot lock a user out. It keeps three limits:
//
//   - Per (account, address), strict: a token bucket (Limiter) of
//     PairBurst failures, refilled one every PairPer. This is what stops an
//     attacker hammering one account from one address — and it stops only
//     that address.
//   - Per address, across accounts: a looser bucket against a password
//     spray of many accounts from one address.
//   - Per account, from every address: an exponential backoff, not a
//     lock. After AccountFree failures within Forget of each other, the
//     account admits one attempt per delay (BackoffBase doubling up to
//     BackoffMax) — but only from addresses that have themselves failed on
//     the account within Forget ("suspect" addresses). An address with no
//     recent failure on the account is never held back by it, so the real
//     user, from any address the attacker has not used, logs in at once
//     however hard the account is being attacked. A distributed guesser
//     thus gets one guess per fresh address per Forget, plus one per delay
//     for all its used addresses together.
//
// Only failures count. An attempt takes its tokens (and, from a suspect
// address, its backoff slot) before the password is checked, so
// concurrent guesses cannot outrun the count and a held-back caller learns
// nothing about the password; a success gives them back. A refused attempt
// costs nothing, so hammering a held-back key does not extend the wait.
// Keys are checked address first, then (account, address), then account:
// a caller refused early spends nothing of the later keys.
//
// The account is what the password is checked against: a login with a
// made-up username that falls back to a wildcard user counts against that
// user. A login that succeeds without proving who the caller is (the
// wildcard user accepts any password) keeps its tokens spent (Attempt.
// Unproven): such logins are limited per address like failures.
//
// Memory is bounded by MaxKeys per table; a key pushed out forgets its
// history (see Limiter). A LoginGuard is safe for concurrent use.
type LoginGuard struct {
	p       LoginPolicy
	now     func() time.Time
	pair    *Limiter
	address *Limiter

	mu      sync.Mutex
	account recent[*backoff] // account → its failures
	suspect recent[struct{}] // account "\x00" address → failed there within Forget
}

// backoff is an account's failure count and the time before which a
// suspect address may not try again.
type backoff struct {
	failures int
	until    time.Time
}

// NewLoginGuard returns a guard with policy p (zero fields: defaults) and
// clock now (nil: time.Now).
func NewLoginGuard(p LoginPolicy, now func() time.Time) *LoginGuard {
	p.setDefaults()
	if now == nil {
		now = time.Now
	}
	g := &LoginGuard{p: p, now: now,
		pair: NewLimiter(p.PairBurst, p.PairPer, now), address: NewLimiter(p.AddressBurst, p.AddressPer, now),
		account: newRecent[*backoff](p.MaxKeys), suspect: newRecent[struct{}](p.MaxKeys)}
	g.pair.MaxKeys, g.address.MaxKeys = p.MaxKeys, p.MaxKeys
	return g
}

// Attempt is an admitted login attempt. Report its outcome with exactly
// one of Succeeded, Failed, Unproven or Abandoned.
type Attempt struct {
	g                *LoginGuard
	account, address string
	pairKey          string // the (account, address) key
	// reserved: the attempt holds the account's backoff slot; until is
	// what the reservation set, before what it replaced.
	reserved      bool
	until, before time.Time
}

// Begin admits an attempt to log in to account from address, or reports
// false and how long until an attempt would be admitted (round it up to
// whole seconds for Retry-After).
func (g *LoginGuard) Begin(account, address string) (*Attempt, time.Duration, bool) {
	pairKey := pairKeyOf(account, address)
	if ok, retry := g.address.Allow(address); !ok {
		return nil, retry, false
	}
	if ok, retry := g.pair.Allow(pairKey); !ok {
		g.address.Success(address)
		return nil, retry, false
	}
	a := &Attempt{g: g, account: account, address: address, pairKey: pairKey}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, suspect := g.suspect.get(pairKey, now, g.p.Forget); !suspect {
		return a, 0, true
	}
	b, _ := g.account.get(account, now, g.p.Forget)
	if b == nil {
		return a, 0, true
	}
	if now.Before(b.until) {
		g.pair.Success(pairKey)
		g.address.Success(address)
		return nil, b.until.Sub(now), false
	}
	// Hold the slot as if this attempt fails; Succeeded gives it back.
	a.reserved, a.before = true, b.until
	b.until = now.Add(g.delay(b.failures + 1))
	a.until = b.until
	return a, 0, true
}

// Succeeded reports that the password was right: the attempt costs
// nothing, and the address is no longer suspect on the account.
func (a *Attempt) Succeeded() { a.refund(true) }

// Unproven reports a login that succeeded without proving who the caller
// is (the wildcard user): its (account, address) and address tokens stay
// spent, the account's backoff is not touched.
func (a *Attempt) Unproven() {
	now := a.g.now()
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.release(now)
}

// Abandoned reports an attempt that decided nothing (the password could
// not be checked): it costs nothing and changes nothing.
func (a *Attempt) Abandoned() { a.refund(false) }

// refund gives back what the attempt took (its tokens and backoff slot);
// cleared, the address is no longer suspect on the account.
func (a *Attempt) refund(cleared bool) {
	a.g.pair.Success(a.pairKey)
	a.g.address.Success(a.address)
	now := a.g.now()
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	if cleared {
		a.g.suspect.remove(a.pairKey)
	}
	a.release(now)
}

// Failed reports a wrong password: the tokens stay spent, the address
// becomes suspect on the account and the account's backoff grows.
func (a *Attempt) Failed() {
	a.g.pair.Failure(a.pairKey)
	a.g.address.Failure(a.address)
	now := a.g.now()
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.g.suspect.put(a.pairKey, struct{}{}, now)
	b, _ := a.g.account.get(a.account, now, a.g.p.Forget)
	if b == nil {
		b = &backoff{}
	}
	b.failures++
	if until := now.Add(a.g.delay(b.failures)); until.After(b.until) {
		b.until = until
	}
	a.g.account.put(a.account, b, now)
}

// pairKeyOf is the key of an (account, address) pair.
func pairKeyOf(account, address string) string { return account + "\x00" + address }

// release gives back the account's backoff slot if the attempt holds it
// and nobody moved it since. Called with g.mu held.
func (a *Attempt) release(now time.Time) {
	if !a.reserved {
		return
	}
	if b, _ := a.g.account.get(a.account, now, a.g.p.Forget); b != nil && b.until.Equal(a.until) {
		b.until = a.before
	}
}

// delay is the backoff after n failures of an account: none up to
// AccountFree, then BackoffBase doubled per further failure, at most
// BackoffMax.
func (g *LoginGuard) delay(n int) time.Duration {
	if n <= g.p.AccountFree {
		return 0
	}
	d := g.p.BackoffBase
	for i := g.p.AccountFree + 1; i < n && d < g.p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, g.p.BackoffMax)
}

// recent is a map whose entries expire a while after they were last put,
// bounded to max entries (the least recently put goes first). Not safe for
// concurrent use.
type recent[V any] struct {
	max int
	m   map[string]*list.Element // of *entry[V]
	lru list.List                // front = most recently put
}

type entry[V any] struct {
	key string
	v   V
	at  time.Time
}

func newRecent[V any](max int) recent[V] {
	return recent[V]{max: max, m: map[string]*list.Element{}}
}

// get returns the entry of key if it was put less than ttl before now; an
// expired entry is dropped.
func (r *recent[V]) get(key string, now time.Time, ttl time.Duration) (V, bool) {
	var zero V
	key = storedKey(key)
	e, ok := r.m[key]
	if !ok {
		return zero, false
	}
	en := e.Value.(*entry[V])
	if now.Sub(en.at) >= ttl {
		r.remove(key)
		return zero, false
	}
	return en.v, true
}

// put stores v under key as of now, evicting the least recently put entry
// when full (expired entries go when they are read, or by eviction).
func (r *recent[V]) put(key string, v V, now time.Time) {
	key = storedKey(key)
	if e, ok := r.m[key]; ok {
		en := e.Value.(*entry[V])
		en.v, en.at = v, now
		r.lru.MoveToFront(e)
		return
	}
	for len(r.m) >= r.max {
		r.remove(r.lru.Back().Value.(*entry[V]).key)
	}
	r.m[key] = r.lru.PushFront(&entry[V]{key: key, v: v, at: now})
}

func (r *recent[V]) remove(key string) {
	key = storedKey(key)
	if e, ok := r.m[key]; ok {
		delete(r.m, key)
		r.lru.Remove(e)
	}
}
