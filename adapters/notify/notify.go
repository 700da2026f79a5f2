// Package notify holds what the notification delivery adapters share: the
// two outcomes a failed delivery can have (the retry schedule is the
// outbox notifier's, app/outbox). The adapters themselves live in the
// subpackages email (SMTP) and webhook (signed HTTP POSTs).
//
// A delivery adapter sends one notification and returns nil (delivered),
// an error wrapping ErrTemporary (try again later) or an error
// wrapping ErrPermanent (retrying the same thing cannot succeed: give up
// and record why).
package notify

import "errors"

var (
	// ErrTemporary: the delivery failed for a reason that may go away
	// (connection refused, timeout, a 4xx SMTP reply, an HTTP 429 or
	// 5xx). Retry later.
	ErrTemporary = errors.New("temporary delivery failure")

	// ErrPermanent: the delivery failed and sending the same notification
	// again will fail the same way (an invalid or rejected address, a 5xx
	// SMTP reply, an HTTP 4xx other than 408 and 429, a configuration the
	// server refuses). Do not retry.
	ErrPermanent = errors.New("permanent delivery failure")
)
