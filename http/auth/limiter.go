package auth

import (
	"container/list"
	"crypto/sha256"
	"math"
	"sync"
	"time"
)

// Login rate limiting defaults: five attempts at once, then one every 12 s
// (300 an hour) for as long as the attempts keep coming.
const (
	DefaultLoginBurst = 5
	DefaultLoginPer   = 12 * time.Second
	// DefaultMaxKeys bounds the keys a Limiter remembers (a few MiB).
	DefaultMaxKeys = 1 << 16
)

const (
	// sweepEvery is how often Allow drops the keys whose bucket has
	// refilled; such a key carries no state and is the same as an absent one.
	sweepEvery = time.Minute
	// maxKeyLen: longer keys are stored as their SHA-256 digest, so a spray
	// of long usernames costs no more memory than short ones.
	maxKeyLen = 64
)

// Limiter is a token bucket per key (LoginGuard's: an address, or an
// account and an address), written as GCRA: each key stores only the time
// its bucket will be full again. A bucket holds burst tokens and regains
// one every per.
//
// Every attempt costs a token, taken by Allow before the password is
// checked, so concurrent guesses cannot outrun the count and a locked-out
// caller learns nothing about the password. Success gives the token back:
// successful logins are never penalised and, in effect, only failures
// count. Failure leaves the token spent. A refused Allow costs nothing, so
// hammering a locked key does not extend the lockout.
//
// A Limiter is one limit. Logins combine several (per account and
// address, per address) with a per-account backoff in LoginGuard, whose
// doc comment explains why no limit keyed by the username alone may refuse
// a login: a stranger could then lock the user out.
//
// Memory is bounded: keys whose bucket has refilled are dropped, and at
// most MaxKeys are kept; when full, the least recently used key goes first
// (which forgets its history — the price of the bound; LoginGuard keeps
// its address and (account, address) keys in separate limiters, so a spray
// of usernames does not push out address state).
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	// MaxKeys caps the keys remembered; set it before first use.
	MaxKeys int

	burst  int
	per    time.Duration
	window time.Duration // burst × per, the debt at which a key is refused
	now    func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element // of *bucket
	lru   list.List                // front = most recently used
	swept time.Time
}

type bucket struct {
	key string
	// full is when the bucket will be full again (GCRA's theoretical
	// arrival time); at or before now the key holds no state.
	full time.Time
}

// NewLimiter returns a limiter allowing burst attempts per key at once and
// one more every per. Zero or negative values take the login defaults
// (DefaultLoginBurst, DefaultLoginPer); a nil now uses time.Now.
func NewLimiter(burst int, per time.Duration, now func() time.Time) *Limiter {
	if burst <= 0 {
		burst = DefaultLoginBurst
	}
	if per <= 0 {
		per = DefaultLoginPer
	}
	if now == nil {
		now = time.Now
	}
	window := time.Duration(math.MaxInt64)
	if per <= window/time.Duration(burst) {
		window = time.Duration(burst) * per
	}
	return &Limiter{MaxKeys: DefaultMaxKeys, burst: burst, per: per, window: window, now: now,
		keys: make(map[string]*list.Element)}
}

// Allow takes a token from key's bucket. It reports false and how long
// until the next attempt would be allowed when the bucket is empty; a
// refused call takes nothing. Round retryAfter up to whole seconds for a
// Retry-After header.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	key = storedKey(key)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)

	e := l.keys[key]
	full := now
	if e != nil {
		if b := e.Value.(*bucket); b.full.After(now) {
			full = b.full
		}
	}
	// Allowed while the debt after this attempt stays within the window.
	next := full.Add(l.per)
	if debt := next.Sub(now); debt > l.window {
		// A key being hammered is in use: keep it from eviction.
		if e != nil {
			l.lru.MoveToFront(e)
		}
		return false, debt - l.window
	}
	if e != nil {
		e.Value.(*bucket).full = next
		l.lru.MoveToFront(e)
		return true, 0
	}
	l.makeRoomLocked()
	l.keys[key] = l.lru.PushFront(&bucket{key: key, full: next})
	return true, 0
}

// Success gives back the token the attempt's Allow took: a successful
// login does not count against the key. Calling it without a preceding
// Allow can at most refill the bucket.
func (l *Limiter) Success(key string) {
	key = storedKey(key)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		return
	}
	b := e.Value.(*bucket)
	b.full = b.full.Add(-l.per)
	if !b.full.After(now) {
		l.removeLocked(e)
	}
}

// Failure records a failed attempt. The token Allow took simply stays
// spent, so Failure only marks the key as recently used (keeping it from
// eviction); calling it is optional.
func (l *Limiter) Failure(key string) {
	key = storedKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[key]; e != nil {
		l.lru.MoveToFront(e)
	}
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// sweepLocked drops, at most once per sweepEvery, the keys whose bucket
// has refilled.
func (l *Limiter) sweepLocked(now time.Time) {
	if now.Sub(l.swept) < sweepEvery && !now.Before(l.swept) {
		return
	}
	l.swept = now
	for e := l.lru.Back(); e != nil; {
		prev := e.Prev()
		if !e.Value.(*bucket).full.After(now) {
			l.removeLocked(e)
		}
		e = prev
	}
}

// makeRoomLocked evicts least recently used keys until one more fits.
func (l *Limiter) makeRoomLocked() {
	limit := l.MaxKeys
	if limit <= 0 {
		limit = DefaultMaxKeys
	}
	for len(l.keys) >= limit {
		l.removeLocked(l.lru.Back())
	}
}

func (l *Limiter) removeLocked(e *list.Element) {
	delete(l.keys, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

func storedKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "\x00sha256:" + string(sum[:])
}
