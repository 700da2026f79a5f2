// Package money holds exact amounts of coins: an integer count of minor
// units (satoshis) together with the asset that knows its exponent. There is
// no floating point anywhere: amounts enter and leave as exact decimal strings.
package money

import (
	"fmt"
	"sort"
)

// MaxExponent is the largest exponent an asset may have: one whole unit,
// 10^18 minor units, still fits in an int64.
const MaxExponent = 18

// Asset is a coin: its ticker code and the number of decimal places of its
// minor unit (8 for BTC: 1 BTC = 10^8 satoshi). The zero Asset is invalid.
// Assets are comparable with ==.
type Asset struct {
	code     string
	exponent uint8
}

// NewAsset returns the asset with this code and exponent. The code is 1 to
// 12 characters of A-Z and 0-9 (upper case, as tickers are written); the
// exponent is 0 to MaxExponent. Use it for coins configured beyond the
// built-in registry (see Lookup).
func NewAsset(code string, exponent int) (Asset, error) {
	if code == "" || len(code) > 12 {
		return Asset{}, fmt.Errorf("money: asset code %q: want 1 to 12 characters", clip(code))
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return Asset{}, fmt.Errorf("money: asset code %q: want A-Z and 0-9 only", clip(code))
		}
	}
	if exponent < 0 || exponent > MaxExponent {
		return Asset{}, fmt.Errorf("money: asset %s: exponent %d outside 0..%d", code, exponent, MaxExponent)
	}
	return Asset{code: code, exponent: uint8(exponent)}, nil
}

// MustAsset is NewAsset for constants and tests; it panics on an invalid asset.
func MustAsset(code string, exponent int) Asset {
	a, err := NewAsset(code, exponent)
	if err != nil {
		panic(err)
	}
	return a
}

// Code returns the ticker, e.g. "BTC".
func (a Asset) Code() string { return a.code }

// Exponent returns the number of decimal places of the minor unit.
func (a Asset) Exponent() int { return int(a.exponent) }

// IsZero reports whether a is the zero (invalid) Asset.
func (a Asset) IsZero() bool { return a.code == "" }

func (a Asset) String() string {
	if a.code == "" {
		return "<no asset>"
	}
	return a.code
}

// The built-in coins: bitcoind and its derivatives, all with 8 decimals.
var (
	BTC  = MustAsset("BTC", 8)
	LTC  = MustAsset("LTC", 8)
	DOGE = MustAsset("DOGE", 8)
	BCH  = MustAsset("BCH", 8)
	DASH = MustAsset("DASH", 8)
	ZEC  = MustAsset("ZEC", 8)
)

var registry = map[string]Asset{
	BTC.code: BTC, LTC.code: LTC, DOGE.code: DOGE, BCH.code: BCH, DASH.code: DASH, ZEC.code: ZEC,
}

// Lookup returns the built-in asset with this code (exact, upper case).
// The registry is fixed; coins from configuration are made with NewAsset.
func Lookup(code string) (Asset, bool) {
	a, ok := registry[code]
	return a, ok
}

// Known returns the built-in assets sorted by code.
func Known() []Asset {
	out := make([]Asset, 0, len(registry))
	for _, a := range registry {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
