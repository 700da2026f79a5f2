// Package pricefeed brings market prices in from outside: sources that poll
// HTTP price APIs (Poller) or follow websocket streams (Stream) and hand
// every price they read, as a prices.PriceTicked, to a Sink.
//
// Prices never pass through float64. A price is read from the JSON text of
// the response, a number or a decimal string, and converted exactly: "1.5",
// "97123.456789012345" and 9.7123456789012345e4 are taken digit for digit,
// and a value that does not fit a prices.Price (more than 18 significant
// decimals, more than 20 digits before the point, negative, zero) is
// rejected with an error saying why, never rounded.
package pricefeed

import (
	"context"
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/coinledger/coinledger/domain/prices"
)

// Sink takes the prices a source reads. It is called from the goroutine
// running the source's Run, one call at a time, with Run's context. An
// error means the tick was not taken: the source logs it and goes on (the
// next poll or message brings a fresh price); it never retries the tick.
type Sink func(ctx context.Context, t prices.PriceTicked) error

// Source is a price feed. Run reads prices until ctx is done and hands each
// to sink as a tick whose Source is Name(). Failures (network errors, bad
// responses, sink errors) are logged and retried with capped exponential
// backoff; they never end Run, which returns ctx.Err() once ctx is done. Run
// is not safe to call more than once at a time on the same Source.
type Source interface {
	// Name is the source name the ticks carry ("coingecko").
	Name() string
	// Run blocks until ctx is done and then returns ctx.Err().
	Run(ctx context.Context, sink Sink) error
}

// Sentinel errors. Errors of this package wrap one of them, or a sentinel
// of package prices for a price that is not a valid prices.Price.
var (
	// ErrInvalidConfig is wrapped by every problem Validate reports.
	ErrInvalidConfig = errors.New("invalid price feed config")
	// ErrHTTPStatus: the price API answered with a status other than 2xx.
	ErrHTTPStatus = errors.New("unexpected HTTP status")
	// ErrMalformed: the response is not JSON, too large, or not shaped as
	// expected.
	ErrMalformed = errors.New("malformed response")
	// ErrNoValue: a JSON path leads nowhere in the document (a missing key,
	// an index past the end, a step into a scalar) or to null.
	ErrNoValue = errors.New("no value at path")
	// ErrInvalidTime: the time a source gives is not a time this package
	// reads.
	ErrInvalidTime = errors.New("invalid time")
)

// Secret is a header value (an API key) that never prints, logs or
// marshals (package secret), so configs holding it can be shown.
type Secret = secret.String

// URL is a feed URL that may carry an API key in its query (see package secret).
type URL = secret.URL

// Reveal returns the secret's value.

// Time formats of a time path (TimeFormat in the configs).
const (
	// TimeAuto (or ""): a JSON number or numeric string is unix time whose
	// unit follows from its size (seconds below 10^11, then milliseconds,
	// microseconds, nanoseconds); any other string is RFC 3339.
	TimeAuto = "auto"
	// TimeUnix: unix seconds, with up to 9 decimals.
	TimeUnix = "unix"
	// TimeUnixMilli: unix milliseconds, with up to 6 decimals.
	TimeUnixMilli = "unix_ms"
	// TimeRFC3339: an RFC 3339 string ("2025-01-02T03:04:05.123Z").
	TimeRFC3339 = "rfc3339"
)

const userAgent = "coinledger-pricefeed/1"

// parsePair reads "BASE/QUOTE" or "BASE-QUOTE".
func parsePair(s string) (prices.Pair, error) {
	if strings.Count(s, "/") == 1 && !strings.Contains(s, "-") {
		s = strings.Replace(s, "/", "-", 1)
	}
	return prices.ParsePair(s)
}

// parsePairs reads a list of pairs, rejecting an empty list and repeats.
func parsePairs(ss []string) ([]prices.Pair, []error) {
	if len(ss) == 0 {
		return nil, []error{errors.New("pairs: none given (want e.g. BTC/USD)")}
	}
	var errs []error
	seen := map[prices.Pair]bool{}
	out := make([]prices.Pair, 0, len(ss))
	for _, s := range ss {
		p, err := parsePair(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("pairs: %q: want BASE/QUOTE", clip(s)))
		case seen[p]:
			errs = append(errs, fmt.Errorf("pairs: %s given twice", p))
		default:
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, errs
}

// validTimeFormat reports whether f is one of the Time* formats or "".
func validTimeFormat(f string) bool {
	switch f {
	case "", TimeAuto, TimeUnix, TimeUnixMilli, TimeRFC3339:
		return true
	}
	return false
}

// buildHeaders checks header names and values and returns them as an
// http.Header.
func buildHeaders(hs map[string]Secret) (http.Header, []error) {
	var errs []error
	h := http.Header{}
	for name, v := range hs {
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("headers: %q is not a header name", clip(name)))
			continue
		}
		if strings.ContainsAny(string(v), "\r\n\x00") {
			errs = append(errs, fmt.Errorf("headers: %s: value holds a line break or NUL", name))
			continue
		}
		h.Set(name, string(v))
	}
	return h, errs
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkURL reports what is wrong with u as an absolute URL of one of the
// schemes, or nil.
func checkURL(u string, schemes ...string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%q is not a URL", clip(u))
	}
	ok := false
	for _, s := range schemes {
		ok = ok || p.Scheme == s
	}
	if !ok {
		return fmt.Errorf("%q: want a %s URL", clip(redactURL(u)), strings.Join(schemes, " or "))
	}
	if p.Host == "" {
		return fmt.Errorf("%q has no host", clip(redactURL(u)))
	}
	return nil
}

// redactURL drops the query, fragment and user info of u, which may carry
// API keys, for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User, p.RawQuery, p.Fragment, p.RawFragment, p.ForceQuery = nil, "", "", "", false
	return p.String()
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// clip shortens untrusted text quoted in errors.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// configError wraps every problem of a config with the source name and
// ErrInvalidConfig, and joins them.
func configError(kind, name string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if name == "" {
		name = "(unnamed)"
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("pricefeed %s %s: %w: %w", kind, clip(name), ErrInvalidConfig, e)
	}
	return errors.Join(out...)
}
