// Package prices holds exact market prices and the price stream of a pair
// (stream price-<BASE>-<QUOTE>): ticks reported by feeds, deduplicated by
// (source, pair, time).
//
// A Price is an exact non-negative decimal with at most 18 decimals, held as
// a 128-bit count of 10^-18 units. There is no floating point and no
// math/big: prices enter and leave as decimal strings ("64000.12"), compare
// exactly whatever their written scale ("1.5" == "1.50"), and are comparable
// with ==.
//
// Pure: no clock, no I/O. Deciders take the state and a command and return
// the events to append; evolving the state with those events is the caller's
// job (Evolve).
package prices

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Decimals is the number of decimals a Price can hold: its unit is 10^-18.
const Decimals = 18

// MaxWholeDigits is the number of digits a Price may have before the point
// (leading zeros aside): the largest price is
// 99999999999999999999.999999999999999999, i.e. 10^38-1 units, which fits in
// 128 bits with room to spare.
const MaxWholeDigits = 20

// maxInputLen bounds the strings Parse looks at (38 significant digits, the
// point and some leading zeros).
const maxInputLen = 64

// Sentinel errors. Every error Parse returns wraps ErrInvalidPrice and,
// where one applies, the more specific sentinel.
var (
	ErrInvalidPrice    = errors.New("invalid price")
	ErrTooManyDecimals = errors.New("too many decimals")
	ErrOverflow        = errors.New("price out of range")
	ErrNegative        = errors.New("negative price")
)

// Price is an exact non-negative decimal: hi<<64|lo units of 10^-18. The
// zero Price is 0. Every value has exactly one representation, so == and
// Cmp agree.
type Price struct {
	hi, lo uint64
}

// pow10 holds 10^0 .. 10^19 (10^19 is the largest power of ten in a uint64).
var pow10 = func() [20]uint64 {
	var p [20]uint64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// maxPrice is 10^38 - 1 units.
var maxPrice = func() Price {
	// 10^38 = 10^19 * 10^19.
	hi, lo := bits.Mul64(pow10[19], pow10[19])
	lo, borrow := bits.Sub64(lo, 1, 0)
	return Price{hi: hi - borrow, lo: lo}
}()

// Max returns the largest Price, 99999999999999999999.999999999999999999.
func Max() Price { return maxPrice }

// Epsilon returns the smallest positive Price, 0.000000000000000001. For
// prices p and q, p < q exactly when p+Epsilon <= q.
func Epsilon() Price { return Price{lo: 1} }

// New returns units × 10^-decimals (New(6400012, 2) is 64000.12), for feeds
// that deliver integers with a scale. decimals must be 0..Decimals.
func New(units uint64, decimals int) (Price, error) {
	if decimals < 0 || decimals > Decimals {
		return Price{}, fmt.Errorf("prices: new %d×10^-%d: %w: %w (want 0..%d decimals)", units, decimals, ErrInvalidPrice, ErrTooManyDecimals, Decimals)
	}
	// units < 2^64 < 1.9×10^19, times at most 10^18: below 10^38.
	hi, lo := bits.Mul64(units, pow10[Decimals-decimals])
	return Price{hi: hi, lo: lo}, nil
}

// Parse reads an exact decimal price such as "64000.12", "0.00000150" or
// "7". The grammar is [0-9]+(\.[0-9]+)?: no sign, no exponent, no spaces or
// separators, no empty parts ("1." and ".5" are rejected), at most Decimals
// digits after the point (trailing zeros count) and at most MaxWholeDigits
// significant digits before it. Zero is a valid price; callers that need a
// positive one check IsZero.
func Parse(s string) (Price, error) {
	if s == "" {
		return Price{}, parseErr(s, nil, "empty")
	}
	if len(s) > maxInputLen {
		return Price{}, parseErr(s, nil, "too long")
	}
	switch s[0] {
	case '-':
		return Price{}, parseErr(s, ErrNegative, "")
	case '+':
		return Price{}, parseErr(s, nil, "leading '+'")
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" {
		return Price{}, parseErr(s, nil, "missing digits before the point")
	}
	if dot && frac == "" {
		return Price{}, parseErr(s, nil, "missing digits after the point")
	}
	if !digits(whole) || !digits(frac) {
		return Price{}, parseErr(s, nil, "want digits[.digits]")
	}
	if len(frac) > Decimals {
		return Price{}, parseErr(s, ErrTooManyDecimals, fmt.Sprintf("at most %d", Decimals))
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > MaxWholeDigits {
		return Price{}, parseErr(s, ErrOverflow, fmt.Sprintf("at most %d digits before the point", MaxWholeDigits))
	}
	// At most 20+18 = 38 digits: below 10^38, no overflow possible.
	var p Price
	for i := 0; i < len(whole); i++ {
		p = p.mul10add(uint64(whole[i] - '0'))
	}
	for i := 0; i < len(frac); i++ {
		p = p.mul10add(uint64(frac[i] - '0'))
	}
	for i := len(frac); i < Decimals; i++ {
		p = p.mul10add(0)
	}
	return p, nil
}

// MustParse is Parse for constants and tests; it panics on an invalid price.
func MustParse(s string) Price {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

func (p Price) mul10add(d uint64) Price {
	h, l := bits.Mul64(p.lo, 10)
	l, carry := bits.Add64(l, d, 0)
	return Price{hi: p.hi*10 + h + carry, lo: l}
}

func parseErr(s string, specific error, detail string) error {
	if detail != "" {
		detail = " (" + detail + ")"
	}
	if specific == nil {
		return fmt.Errorf("prices: parse %q: %w%s", clip(s), ErrInvalidPrice, detail)
	}
	return fmt.Errorf("prices: parse %q: %w: %w%s", clip(s), ErrInvalidPrice, specific, detail)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// IsZero reports whether p is 0.
func (p Price) IsZero() bool { return p.hi == 0 && p.lo == 0 }

// Cmp returns -1, 0 or +1 as p is less than, equal to or greater than q.
func (p Price) Cmp(q Price) int {
	switch {
	case p.hi < q.hi:
		return -1
	case p.hi > q.hi:
		return 1
	case p.lo < q.lo:
		return -1
	case p.lo > q.lo:
		return 1
	}
	return 0
}

// Less reports whether p < q.
func (p Price) Less(q Price) bool {
	return p.hi < q.hi || (p.hi == q.hi && p.lo < q.lo)
}

// Add returns p+q, or ErrOverflow beyond Max.
func (p Price) Add(q Price) (Price, error) {
	lo, carry := bits.Add64(p.lo, q.lo, 0)
	hi, carry := bits.Add64(p.hi, q.hi, carry)
	s := Price{hi: hi, lo: lo}
	if carry != 0 || maxPrice.Less(s) {
		return Price{}, fmt.Errorf("prices: add %s + %s: %w", p, q, ErrOverflow)
	}
	return s, nil
}

// Sub returns p-q, or ErrNegative when q > p.
func (p Price) Sub(q Price) (Price, error) {
	lo, borrow := bits.Sub64(p.lo, q.lo, 0)
	hi, borrow := bits.Sub64(p.hi, q.hi, borrow)
	if borrow != 0 {
		return Price{}, fmt.Errorf("prices: subtract %s - %s: %w", p, q, ErrNegative)
	}
	return Price{hi: hi, lo: lo}, nil
}

// String returns the shortest exact decimal: no trailing zeros after the
// point and no point for whole numbers ("64000.12", "64000.1", "7", "0",
// "0.000000000000000001"). Parse(p.String()) == p.
func (p Price) String() string { return p.format(0) }

// StringFixed is String padded with trailing zeros to at least decimals
// decimals (StringFixed(2) of 64000.1 is "64000.10"). It never rounds: a
// price with more significant decimals keeps them all. decimals is clamped
// to 0..Decimals.
func (p Price) StringFixed(decimals int) string { return p.format(decimals) }

func (p Price) format(minDecimals int) string {
	minDecimals = max(0, min(minDecimals, Decimals))
	ds := p.digits()
	if len(ds) <= Decimals {
		ds = strings.Repeat("0", Decimals+1-len(ds)) + ds
	}
	whole, frac := ds[:len(ds)-Decimals], ds[len(ds)-Decimals:]
	keep := len(strings.TrimRight(frac, "0"))
	frac = frac[:max(keep, minDecimals)]
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

// digits returns the units of p in decimal, without leading zeros ("0" for 0).
func (p Price) digits() string {
	const chunk = 10_000_000_000_000_000_000 // 10^19
	if p.hi == 0 {
		return strconv.FormatUint(p.lo, 10)
	}
	// p <= 10^38-1, so hi < 10^38/2^64 < 10^19 (Div64 needs hi < chunk) and
	// the quotient p/10^19 < 10^19 fits in a uint64. hi > 0 means p >= 2^64
	// > 10^19, so the quotient is not zero.
	q, r := bits.Div64(p.hi, p.lo, chunk)
	return strconv.FormatUint(q, 10) + pad19(r)
}

func pad19(v uint64) string {
	s := strconv.FormatUint(v, 10)
	return strings.Repeat("0", 19-len(s)) + s
}

// MarshalText writes the price as its exact decimal string, so JSON carries
// it as a string ("64000.12"), never as a number.
func (p Price) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a decimal string with Parse. A JSON number (not a
// string) is rejected by encoding/json before it gets here.
func (p *Price) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
