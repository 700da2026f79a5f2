package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a webhook request.
const (
	HeaderTimestamp = "Coinledger-Timestamp" // unix seconds, decimal
	HeaderSignature = "Coinledger-Signature" // "v1=<hex>", comma-separated when several
	HeaderDelivery  = "Coinledger-Delivery"  // delivery id, the same on every retry
	HeaderEvent     = "Coinledger-Event"     // event type
)

// DefaultTolerance is how far a timestamp may be from the receiver's clock
// when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// maxSignatures bounds the work Verify does for one header.
const maxSignatures = 8

// Errors Verify returns.
var (
	ErrMissingHeader      = errors.New("webhook: missing signature header")
	ErrMalformedHeader    = errors.New("webhook: malformed signature header")
	ErrSignatureMismatch  = errors.New("webhook: signature mismatch")
	ErrTimestampTolerance = errors.New("webhook: timestamp outside tolerance")
)

// Sign returns the Coinledger-Signature value for body sent at ts:
// "v1=" followed by the hex HMAC-SHA256, keyed with secret, of the unix
// seconds of ts in decimal, a dot, and body.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a webhook request as a receiver should: the
// Coinledger-Timestamp header must be within tolerance of now (either
// way; tolerance ≤ 0 means DefaultTolerance), and one of the "v1="
// signatures in Coinledger-Signature must be the HMAC of that timestamp
// and body under secret. Several signatures, separated by commas, are
// accepted so a sender can sign with the old and the new secret while
// the secret is rotated; entries of other schemes ("v0=…") are ignored.
// Signatures are compared in constant time.
//
// The error wraps ErrMissingHeader, ErrMalformedHeader,
// ErrTimestampTolerance or ErrSignatureMismatch.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	rawTS, rawSig := header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if rawTS == "" {
		return fmt.Errorf("%w: no %s", ErrMissingHeader, HeaderTimestamp)
	}
	if rawSig == "" {
		return fmt.Errorf("%w: no %s", ErrMissingHeader, HeaderSignature)
	}
	unix, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not unix seconds", ErrMalformedHeader, HeaderTimestamp)
	}
	sigs, err := parseSignatures(rawSig)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrMalformedHeader, err)
	}
	// Sub saturates for far-away timestamps, so compare both bounds
	// rather than negating a possibly minimal duration.
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %v from now, tolerance %v",
			ErrTimestampTolerance, unix, d.Round(time.Second), tolerance)
	}
	want := mac(secret, rawTS, body)
	for _, sig := range sigs {
		if hmac.Equal(want, sig) {
			return nil
		}
	}
	return ErrSignatureMismatch
}

// parseSignatures returns the decoded v1 signatures of a
// Coinledger-Signature value.
func parseSignatures(v string) ([][]byte, error) {
	parts := strings.Split(v, ",")
	if len(parts) > maxSignatures {
		return nil, fmt.Errorf("more than %d signatures", maxSignatures)
	}
	var sigs [][]byte
	for i, p := range parts {
		scheme, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || scheme == "" {
			return nil, fmt.Errorf("entry %d is not scheme=value", i+1)
		}
		if scheme != "v1" {
			continue
		}
		sig, err := hex.DecodeString(value)
		if err != nil || len(sig) != sha256.Size {
			return nil, errors.New("v1 signature is not 64 hex digits")
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, errors.New("no v1 signature")
	}
	return sigs, nil
}
