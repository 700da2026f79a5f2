package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by Parse and ParsePositive wraps
// ErrInvalidAmount and, where one applies, the more specific sentinel, so
// callers may test either with errors.Is.
var (
	ErrInvalidAmount   = errors.New("invalid amount")
	ErrTooManyDecimals = errors.New("too many decimals")
	ErrNegative        = errors.New("negative amount not allowed")
	ErrZero            = errors.New("zero amount not allowed")
	ErrOverflow        = errors.New("amount overflows int64 minor units")
	ErrAssetMismatch   = errors.New("asset mismatch")
)

// maxInputLen bounds the decimal strings Parse looks at. int64 has 19
// digits and an asset at most 18 decimals; the rest leaves room for a sign,
// the point and some leading zeros.
const maxInputLen = 64

// Amount is an exact quantity of an asset: a signed count of minor units.
// The zero Amount has no asset; make amounts with New, Zero or Parse.
// Amounts are comparable with == (same units and same asset).
type Amount struct {
	units int64
	asset Asset
}

// New returns units minor units of asset (New(BTC, 150000) is 0.00150000 BTC).
func New(asset Asset, units int64) Amount { return Amount{units: units, asset: asset} }

// Zero returns the zero amount of asset.
func Zero(asset Asset) Amount { return Amount{asset: asset} }

// Units returns the signed count of minor units.
func (a Amount) Units() int64 { return a.units }

// Asset returns the amount's asset.
func (a Amount) Asset() Asset { return a.asset }

// Sign returns -1, 0 or +1.
func (a Amount) Sign() int {
	switch {
	case a.units < 0:
		return -1
	case a.units > 0:
		return 1
	}
	return 0
}

// IsZero reports whether the amount is zero units (of any asset).
func (a Amount) IsZero() bool { return a.units == 0 }

// Parse reads an exact decimal string such as "0.00150000", "1", "1.5" or
// "-2.25" as an amount of asset. The grammar is -?[0-9]+(\.[0-9]+)?: no '+',
// no exponent, no spaces, no separators, no empty parts ("1." and ".5" are
// rejected), at most asset.Exponent() decimals (trailing zeros count), and a
// magnitude of at most math.MaxInt64 minor units (so Neg of a parsed amount
// never overflows).
func Parse(s string, asset Asset) (Amount, error) {
	return parse(s, asset, true)
}

// ParsePositive is Parse for quantities that must be greater than zero,
// such as a transfer amount: any sign is rejected with ErrNegative and a
// zero value with ErrZero.
func ParsePositive(s string, asset Asset) (Amount, error) {
	a, err := parse(s, asset, false)
	if err != nil {
		return Amount{}, err
	}
	if a.units == 0 {
		return Amount{}, parseErr(s, asset, ErrZero, "")
	}
	return a, nil
}

func parseErr(s string, asset Asset, specific error, detail string) error {
	if detail != "" {
		detail = " (" + detail + ")"
	}
	if specific == nil {
		return fmt.Errorf("money: parse %q as %s: %w%s", clip(s), asset, ErrInvalidAmount, detail)
	}
	return fmt.Errorf("money: parse %q as %s: %w: %w%s", clip(s), asset, ErrInvalidAmount, specific, detail)
}

func parse(s string, asset Asset, allowSign bool) (Amount, error) {
	if asset.IsZero() {
		return Amount{}, parseErr(s, asset, nil, "no asset")
	}
	if s == "" {
		return Amount{}, parseErr(s, asset, nil, "empty")
	}
	if len(s) > maxInputLen {
		return Amount{}, parseErr(s, asset, nil, "too long")
	}
	body, neg := s, false
	switch s[0] {
	case '-':
		body, neg = s[1:], true
	case '+':
		return Amount{}, parseErr(s, asset, nil, "leading '+'")
	}
	whole, frac, dot := strings.Cut(body, ".")
	if whole == "" {
		return Amount{}, parseErr(s, asset, nil, "missing digits before the point")
	}
	if dot && frac == "" {
		return Amount{}, parseErr(s, asset, nil, "missing digits after the point")
	}
	if !digits(whole) || !digits(frac) {
		return Amount{}, parseErr(s, asset, nil, "want -?digits[.digits]")
	}
	exp := asset.Exponent()
	if len(frac) > exp {
		return Amount{}, parseErr(s, asset, ErrTooManyDecimals, fmt.Sprintf("%s allows %d", asset, exp))
	}
	var u uint64
	push := func(d uint64) bool {
		if u > (math.MaxInt64-d)/10 {
			return false
		}
		u = u*10 + d
		return true
	}
	ok := true
	for i := 0; ok && i < len(whole); i++ {
		ok = push(uint64(whole[i] - '0'))
	}
	for i := 0; ok && i < len(frac); i++ {
		ok = push(uint64(frac[i] - '0'))
	}
	for i := len(frac); ok && i < exp; i++ {
		ok = push(0)
	}
	if !ok {
		return Amount{}, parseErr(s, asset, ErrOverflow, "")
	}
	if neg && !allowSign {
		return Amount{}, parseErr(s, asset, ErrNegative, "")
	}
	units := int64(u)
	if neg {
		units = -units
	}
	return Amount{units: units, asset: asset}, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount with exactly Exponent decimals ("0.00150000",
// "-1.50000000"; an exponent of 0 gives no point). The asset code is not
// included. Parse(a.String(), a.Asset()) returns a.
func (a Amount) String() string {
	var mag uint64
	if a.units < 0 {
		mag = uint64(-(a.units + 1)) + 1 // also right for math.MinInt64
	} else {
		mag = uint64(a.units)
	}
	ds := strconv.FormatUint(mag, 10)
	exp := a.asset.Exponent()
	var b strings.Builder
	b.Grow(len(ds) + exp + 3)
	if a.units < 0 {
		b.WriteByte('-')
	}
	if exp == 0 {
		b.WriteString(ds)
		return b.String()
	}
	if len(ds) <= exp {
		b.WriteString("0.")
		for i := len(ds); i < exp; i++ {
			b.WriteByte('0')
		}
		b.WriteString(ds)
		return b.String()
	}
	b.WriteString(ds[:len(ds)-exp])
	b.WriteByte('.')
	b.WriteString(ds[len(ds)-exp:])
	return b.String()
}

func (a Amount) same(b Amount, op string) error {
	if a.asset != b.asset {
		return fmt.Errorf("money: %s %s and %s: %w", op, a.asset, b.asset, ErrAssetMismatch)
	}
	return nil
}

// Add returns a+b, or ErrAssetMismatch / ErrOverflow.
func (a Amount) Add(b Amount) (Amount, error) {
	if err := a.same(b, "add"); err != nil {
		return Amount{}, err
	}
	s, ok := AddUnits(a.units, b.units)
	if !ok {
		return Amount{}, fmt.Errorf("money: add %s + %s %s: %w", a, b, a.asset, ErrOverflow)
	}
	return Amount{units: s, asset: a.asset}, nil
}

// Sub returns a-b, or ErrAssetMismatch / ErrOverflow.
func (a Amount) Sub(b Amount) (Amount, error) {
	if err := a.same(b, "subtract"); err != nil {
		return Amount{}, err
	}
	d, ok := SubUnits(a.units, b.units)
	if !ok {
		return Amount{}, fmt.Errorf("money: subtract %s - %s %s: %w", a, b, a.asset, ErrOverflow)
	}
	return Amount{units: d, asset: a.asset}, nil
}

// Neg returns -a; only math.MinInt64 units overflow.
func (a Amount) Neg() (Amount, error) {
	if a.units == math.MinInt64 {
		return Amount{}, fmt.Errorf("money: negate %s %s: %w", a, a.asset, ErrOverflow)
	}
	return Amount{units: -a.units, asset: a.asset}, nil
}

// Cmp returns -1, 0 or +1 as a is less than, equal to or greater than b,
// or ErrAssetMismatch.
func (a Amount) Cmp(b Amount) (int, error) {
	if err := a.same(b, "compare"); err != nil {
		return 0, err
	}
	switch {
	case a.units < b.units:
		return -1, nil
	case a.units > b.units:
		return 1, nil
	}
	return 0, nil
}

// AddUnits returns x+y and whether it fits in an int64.
func AddUnits(x, y int64) (int64, bool) {
	s := x + y
	// Overflow iff both operands have the same sign and the sum's differs.
	if (x >= 0) == (y >= 0) && (s >= 0) != (x >= 0) {
		return 0, false
	}
	return s, true
}

// SubUnits returns x-y and whether it fits in an int64.
func SubUnits(x, y int64) (int64, bool) {
	d := x - y
	if (x >= 0) != (y >= 0) && (d >= 0) != (x >= 0) {
		return 0, false
	}
	return d, true
}

// MarshalJSON writes the amount as its exact decimal string ("0.00150000").
func (a Amount) MarshalJSON() ([]byte, error) {
	s := a.String()
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a decimal string with Parse. A decimal string does
// not name its asset, so the receiver must already carry one
// (a := money.Zero(money.BTC); json.Unmarshal(data, &a)); otherwise it fails.
// Handlers usually bind a string field and call Parse or ParsePositive with
// the wallet's asset instead. JSON null leaves the amount unchanged.
func (a *Amount) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	if a.asset.IsZero() {
		return fmt.Errorf("money: unmarshal %s: %w (the amount has no asset to parse into)", clip(string(data)), ErrInvalidAmount)
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return fmt.Errorf("money: unmarshal %s: %w (want a JSON string such as \"0.00150000\")", clip(string(data)), ErrInvalidAmount)
	}
	v, err := Parse(string(data[1:len(data)-1]), a.asset)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
