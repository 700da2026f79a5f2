package prices

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPair is wrapped by every error ParsePair, NewPair and
// PairFromStream return.
var ErrInvalidPair = errors.New("invalid pair")

// StreamPrefix starts the name of every price stream: "price-BTC-USD".
const StreamPrefix = "price-"

// maxSymbolLen matches the asset codes of package money (1 to 12 of A-Z 0-9).
const maxSymbolLen = 12

// Pair is a market, BASE-QUOTE ("BTC-USD": the price of one BTC in USD).
// Both symbols are 1 to 12 characters of A-Z and 0-9 and differ. The zero
// Pair is invalid; make pairs with ParsePair or NewPair. Pairs are
// comparable with == and usable as map keys.
type Pair struct {
	base, quote string
}

// NewPair returns the pair base-quote. Lower-case letters are accepted and
// upper-cased: NewPair("btc", "usd") is BTC-USD.
func NewPair(base, quote string) (Pair, error) {
	b, okB := symbol(base)
	q, okQ := symbol(quote)
	switch {
	case !okB || !okQ:
		return Pair{}, fmt.Errorf("prices: pair %q-%q: %w (symbols are 1 to %d of A-Z and 0-9)", clip(base), clip(quote), ErrInvalidPair, maxSymbolLen)
	case b == q:
		return Pair{}, fmt.Errorf("prices: pair %s-%s: %w (base and quote are the same)", b, q, ErrInvalidPair)
	}
	return Pair{base: b, quote: q}, nil
}

// ParsePair reads "BASE-QUOTE" (one '-', case-insensitive; the result is
// upper case).
func ParsePair(s string) (Pair, error) {
	base, quote, ok := strings.Cut(s, "-")
	if !ok {
		return Pair{}, fmt.Errorf("prices: pair %q: %w (want BASE-QUOTE)", clip(s), ErrInvalidPair)
	}
	return NewPair(base, quote)
}

// MustPair is ParsePair for constants and tests; it panics on an invalid pair.
func MustPair(s string) Pair {
	p, err := ParsePair(s)
	if err != nil {
		panic(err)
	}
	return p
}

// PairFromStream returns the pair of a price stream name ("price-BTC-USD").
// Only the canonical (upper-case) form is accepted: a stream name is never
// normalised, so that one pair has one stream.
func PairFromStream(stream string) (Pair, error) {
	rest, ok := strings.CutPrefix(stream, StreamPrefix)
	if !ok {
		return Pair{}, fmt.Errorf("prices: stream %q: %w (want %sBASE-QUOTE)", clip(stream), ErrInvalidPair, StreamPrefix)
	}
	p, err := ParsePair(rest)
	if err != nil {
		return Pair{}, err
	}
	if p.String() != rest {
		return Pair{}, fmt.Errorf("prices: stream %q: %w (not upper case)", clip(stream), ErrInvalidPair)
	}
	return p, nil
}

// symbol upper-cases s and reports whether it is a valid symbol.
func symbol(s string) (string, bool) {
	if s == "" || len(s) > maxSymbolLen {
		return "", false
	}
	var b [maxSymbolLen]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return "", false
		}
		b[i] = c
	}
	if up := string(b[:len(s)]); up != s {
		return up, true
	}
	return s, true
}

// Base returns the base symbol ("BTC" of BTC-USD).
func (p Pair) Base() string { return p.base }

// Quote returns the quote symbol ("USD" of BTC-USD).
func (p Pair) Quote() string { return p.quote }

// IsZero reports whether p is the zero (invalid) Pair.
func (p Pair) IsZero() bool { return p.base == "" }

// String returns "BASE-QUOTE", or "" for the zero Pair.
func (p Pair) String() string {
	if p.IsZero() {
		return ""
	}
	return p.base + "-" + p.quote
}

// Stream returns the name of the pair's price stream, "price-BASE-QUOTE".
func (p Pair) Stream() string { return StreamPrefix + p.String() }

// MarshalText writes "BASE-QUOTE"; the zero Pair cannot be marshalled.
func (p Pair) MarshalText() ([]byte, error) {
	if p.IsZero() {
		return nil, fmt.Errorf("prices: marshal pair: %w (zero pair)", ErrInvalidPair)
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads a pair with ParsePair.
func (p *Pair) UnmarshalText(b []byte) error {
	v, err := ParsePair(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
