// Package notify holds what the notification delivery adapters share: the
// two outcomes a failed delivery can have and the retry schedule the
// outbox notifier follows. The adapters themselves live in the
// subpackages email (SMTP) and webhook (signed HTTP POSTs).
//
// A delivery adapter sends one notification and returns nil (delivered),
// an error wrapping ErrTemporary (try again after Backoff) or an error
// wrapping ErrPermanent (retrying the same thing cannot succeed: give up
// and record why).
package notify

import (
	"errors"
	"time"
)

var (
	// ErrTemporary: the delivery failed for a reason that may go away
	// (connection refused, timeout, a 4xx SMTP reply, an HTTP 429 or
	// 5xx). Retry later, following Backoff.
	ErrTemporary = errors.New("temporary delivery failure")

	// ErrPermanent: the delivery failed and sending the same notification
	// again will fail the same way (an invalid or rejected address, a 5xx
	// SMTP reply, an HTTP 4xx other than 408 and 429, a configuration the
	// server refuses). Do not retry.
	ErrPermanent = errors.New("permanent delivery failure")
)

// MaxAttempts is how many times a notification is tried before the
// notifier gives up on it.
const MaxAttempts = 8

// Backoff says how long to wait before the next attempt, given how many
// attempts have failed so far, and false when the notifier should give up.
//
//	failed attempts   wait before the next one
//	0                 0 (nothing failed yet: deliver now)
//	1                 10 s
//	2                 1 min
//	3 … 7             10 min each
//	8 (MaxAttempts)   give up (0, false)
//
// A notification is thus tried at most 8 times over about 51 minutes.
// Backoff is a pure function; add jitter, if wanted, at the caller.
func Backoff(failed int) (time.Duration, bool) {
	switch {
	case failed <= 0:
		return 0, true
	case failed == 1:
		return 10 * time.Second, true
	case failed == 2:
		return time.Minute, true
	case failed < MaxAttempts:
		return 10 * time.Minute, true
	default:
		return 0, false
	}
}
