package pricefeed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// path is a JSON path: object keys and array indexes, one per step. Written
// as a dot path, "data.rates.0.price": a step that is a decimal integer
// indexes an array, and names the key "0" in an object. Keys containing a
// dot cannot be written.
type path []string

const (
	maxPathLen   = 512
	maxPathSteps = 32
)

// parsePath reads a dot path. It rejects an empty path and empty steps
// ("a..b", ".a", "a.").
func parsePath(s string) (path, error) {
	switch {
	case s == "":
		return nil, errors.New("empty JSON path")
	case len(s) > maxPathLen:
		return nil, fmt.Errorf("JSON path %q: longer than %d bytes", clip(s), maxPathLen)
	}
	steps := strings.Split(s, ".")
	if len(steps) > maxPathSteps {
		return nil, fmt.Errorf("JSON path %q: more than %d steps", clip(s), maxPathSteps)
	}
	for i, st := range steps {
		if st == "" {
			return nil, fmt.Errorf("JSON path %q: step %d is empty (want steps like data.rates.0.price)", clip(s), i+1)
		}
	}
	return path(steps), nil
}

// String returns the dot path, clipped for error messages.
func (p path) String() string { return clip(strings.Join(p, ".")) }

// lookup returns the JSON text at p in doc. Errors wrap ErrMalformed when
// doc is not JSON, ErrNoValue when p leads nowhere or to null.
func (p path) lookup(doc []byte) (json.RawMessage, error) {
	if !json.Valid(doc) {
		return nil, fmt.Errorf("%w: not JSON: %s", ErrMalformed, snippet(doc))
	}
	cur := bytes.TrimSpace(doc)
	for i, step := range p {
		switch cur[0] {
		case '{':
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				return nil, fmt.Errorf("path %s: %w: %v", p, ErrMalformed, err)
			}
			v, ok := m[step]
			if !ok {
				return nil, fmt.Errorf("path %s: %w (no key %q in %s)", p, ErrNoValue, clip(step), p.parent(i))
			}
			cur = bytes.TrimSpace(v)
		case '[':
			var a []json.RawMessage
			if err := json.Unmarshal(cur, &a); err != nil {
				return nil, fmt.Errorf("path %s: %w: %v", p, ErrMalformed, err)
			}
			n, err := strconv.Atoi(step)
			if err != nil || !isDigits(step) {
				return nil, fmt.Errorf("path %s: %w (%s is an array and %q is not an index)", p, ErrNoValue, p.parent(i), clip(step))
			}
			if n >= len(a) {
				return nil, fmt.Errorf("path %s: %w (index %d past the end of %s, length %d)", p, ErrNoValue, n, p.parent(i), len(a))
			}
			cur = bytes.TrimSpace(a[n])
		default:
			return nil, fmt.Errorf("path %s: %w (%s is %s)", p, ErrNoValue, p.parent(i), kind(cur))
		}
	}
	if string(cur) == "null" {
		return nil, fmt.Errorf("path %s: %w (null)", p, ErrNoValue)
	}
	return cur, nil
}

// parent names the value step i looks into.
func (p path) parent(i int) string {
	if i == 0 {
		return "the document"
	}
	return p[:i].String()
}

// kind describes the JSON value v (valid JSON) for errors.
func kind(v []byte) string {
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// scalar returns the text of a JSON string (unquoted) or number, and
// whether it was a string.
func scalar(raw []byte) (string, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, fmt.Errorf("%w: empty value", ErrMalformed)
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, fmt.Errorf("%w: bad string %s", ErrMalformed, snippet(raw))
		}
		return s, true, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if !json.Valid(raw) {
			return "", false, fmt.Errorf("%w: bad number %s", ErrMalformed, snippet(raw))
		}
		return string(raw), false, nil
	case c == 'n' && string(raw) == "null":
		return "", false, fmt.Errorf("%w (null)", ErrNoValue)
	}
	return "", false, fmt.Errorf("%w: want a number or a string, got %s", ErrMalformed, kind(raw))
}

// decodePrice reads a positive price from a JSON number or decimal string,
// exactly (see exactDecimal). Errors wrap prices.ErrInvalidPrice (and the
// more specific prices sentinel), ErrMalformed or ErrNoValue.
func decodePrice(raw []byte) (prices.Price, error) {
	s, _, err := scalar(raw)
	if err != nil {
		return prices.Price{}, fmt.Errorf("price: %w", err)
	}
	d, err := exactDecimal(s)
	if err != nil {
		return prices.Price{}, err
	}
	p, err := prices.Parse(d)
	if err != nil {
		return prices.Price{}, fmt.Errorf("price %q: %w", clip(s), err)
	}
	if p.IsZero() {
		return prices.Price{}, fmt.Errorf("price %q: %w (zero)", clip(s), prices.ErrInvalidPrice)
	}
	return p, nil
}

// maxNumberLen bounds the decimal text exactDecimal looks at.
const maxNumberLen = 256

// exactDecimal rewrites a decimal number, optionally signed and in exponent
// notation (the JSON number grammar, leading zeros allowed), as the plain
// decimal prices.Parse reads: no sign, no exponent, no leading zeros before
// the point and no trailing zeros after it ("9.71234e4" → "97123.4",
// "1.50" → "1.5"). It shifts digits and never rounds: a value with more than
// prices.Decimals significant decimals or more than prices.MaxWholeDigits
// digits before the point is an error, as is a negative one. Zero gives
// "0". Errors wrap prices.ErrInvalidPrice.
func exactDecimal(s string) (string, error) {
	bad := func(specific error, detail string) error {
		if specific == nil {
			return fmt.Errorf("price %q: %w (%s)", clip(s), prices.ErrInvalidPrice, detail)
		}
		return fmt.Errorf("price %q: %w: %w (%s)", clip(s), prices.ErrInvalidPrice, specific, detail)
	}
	if len(s) > maxNumberLen {
		return "", bad(nil, fmt.Sprintf("longer than %d characters", maxNumberLen))
	}
	rest, neg := strings.CutPrefix(s, "-")
	mant, exp, hasExp := rest, "", false
	if i := strings.IndexAny(rest, "eE"); i >= 0 {
		mant, exp, hasExp = rest[:i], rest[i+1:], true
	}
	whole, frac, dot := strings.Cut(mant, ".")
	if whole == "" || (dot && frac == "") || !isDigits(whole) || !isDigits(frac) {
		return "", bad(nil, "want digits[.digits][e±digits]")
	}
	shift := 0
	if hasExp {
		e, eneg := exp, false
		if e != "" && (e[0] == '+' || e[0] == '-') {
			e, eneg = e[1:], e[0] == '-'
		}
		if e == "" || !isDigits(e) {
			return "", bad(nil, "bad exponent")
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > 4 {
			return "", bad(nil, "exponent out of range")
		}
		shift, _ = strconv.Atoi("0" + e) // at most 4 digits: cannot fail
		if eneg {
			shift = -shift
		}
	}
	// The value is 0.ds × 10^point once leading zeros are gone; trailing
	// zeros of ds do not change it.
	ds := whole + frac
	point := len(whole) + shift
	lead := len(ds) - len(strings.TrimLeft(ds, "0"))
	ds, point = ds[lead:], point-lead
	ds = strings.TrimRight(ds, "0")
	if ds == "" {
		return "0", nil
	}
	switch {
	case neg:
		return "", bad(prices.ErrNegative, "negative")
	case point > prices.MaxWholeDigits:
		return "", bad(prices.ErrOverflow, fmt.Sprintf("more than %d digits before the point", prices.MaxWholeDigits))
	case len(ds)-point > prices.Decimals:
		return "", bad(prices.ErrTooManyDecimals, fmt.Sprintf("more than %d significant decimals", prices.Decimals))
	}
	switch {
	case point <= 0:
		return "0." + strings.Repeat("0", -point) + ds, nil
	case point >= len(ds):
		return ds + strings.Repeat("0", point-len(ds)), nil
	}
	return ds[:point] + "." + ds[point:], nil
}

// maxUnix is 9999-12-31T23:59:59Z: later times are not believed.
const maxUnix = 253402300799

// decodeTime reads a time in format (one of the Time* constants or "")
// from a JSON number or string. Unix times are read digit by digit, never
// through float64; exponent notation is rejected. The time must be after
// the epoch and before year 10000. Errors wrap ErrInvalidTime, ErrNoValue
// or ErrMalformed.
func decodeTime(raw []byte, format string) (time.Time, error) {
	s, isString, err := scalar(raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	numeric := s != "" && s[0] >= '0' && s[0] <= '9' && strings.Trim(s, "0123456789.") == ""
	switch {
	case format == TimeRFC3339 || ((format == "" || format == TimeAuto) && isString && !numeric):
		if !isString {
			return time.Time{}, fmt.Errorf("time %s: %w (want an RFC 3339 string)", clip(s), ErrInvalidTime)
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w (want RFC 3339)", clip(s), ErrInvalidTime)
		}
		if t.Unix() <= 0 || t.Unix() > maxUnix {
			return time.Time{}, fmt.Errorf("time %q: %w (out of range)", clip(s), ErrInvalidTime)
		}
		return t.UTC(), nil
	case format == TimeUnix:
		return unixTime(s, 0)
	case format == TimeUnixMilli:
		return unixTime(s, 3)
	}
	// Auto: the unit follows from the number of whole digits (seconds
	// reach 11 digits only in the year 5138).
	whole, _, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	switch n := len(whole); {
	case n <= 11:
		return unixTime(s, 0)
	case n <= 14:
		return unixTime(s, 3)
	case n <= 17:
		return unixTime(s, 6)
	default:
		return unixTime(s, 9)
	}
}

// unixTime reads s, a decimal count of 10^-scale seconds since the epoch.
func unixTime(s string, scale int) (time.Time, error) {
	bad := func(detail string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("time %q: %w (%s)", clip(s), ErrInvalidTime, detail)
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !isDigits(whole) || !isDigits(frac) {
		return bad("want a non-negative unix time without exponent")
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 9-scale {
		return bad("finer than a nanosecond")
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 19 {
		return bad("out of range")
	}
	n, err := strconv.ParseUint("0"+whole, 10, 64)
	if err != nil {
		return bad("out of range")
	}
	unit := uint64(1)
	for range scale {
		unit *= 10
	}
	sec, rem := n/unit, n%unit
	// rem < 10^scale and frac has at most 9-scale digits: nsec < 10^9.
	var fracNs uint64
	if frac != "" {
		fracNs, _ = strconv.ParseUint(frac+strings.Repeat("0", 9-scale-len(frac)), 10, 64) // at most 9 digits
	}
	nsec := rem*(1_000_000_000/unit) + fracNs
	if sec > maxUnix || (sec == 0 && nsec == 0) {
		return bad("out of range")
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// snippet quotes the start of untrusted bytes for an error message.
func snippet(b []byte) string {
	const max = 128
	b = bytes.TrimSpace(b)
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
