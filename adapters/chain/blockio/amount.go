package blockio

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Decimals of block.io's amounts: minor units are 1e-8 coins.
const Decimals = 8

const unit = 100_000_000

// ErrInvalidAmount: not a decimal amount this package reads.
var ErrInvalidAmount = errors.New("blockio: invalid amount")

// ParseAmount reads a non-negative decimal amount as block.io writes it
// ("0.00025000", "14199941.00000000", "0.2432256", "3") into minor units,
// exactly. More than 8 decimals are accepted only when the extra ones are
// zeros; signs, exponents, blanks and values past int64 are refused
// (ErrInvalidAmount).
func ParseAmount(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q", ErrInvalidAmount, s)
	}
	if len(frac) > Decimals {
		if strings.Trim(frac[Decimals:], "0") != "" {
			return 0, fmt.Errorf("%w: %q has more than %d decimals", ErrInvalidAmount, s, Decimals)
		}
		frac = frac[:Decimals]
	}
	frac += strings.Repeat("0", Decimals-len(frac))
	if whole = strings.TrimLeft(whole, "0"); whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidAmount, s)
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	if w > (math.MaxInt64-f)/unit {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidAmount, s)
	}
	return w*unit + f, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount writes minor units as block.io reads them, with 8 decimals
// ("0.00025000"); a negative amount gets a leading "-".
func FormatAmount(v int64) string {
	sign := ""
	u := uint64(v)
	if v < 0 {
		sign, u = "-", uint64(-(v+1))+1
	}
	return fmt.Sprintf("%s%d.%08d", sign, u/unit, u%unit)
}

// amount is a JSON amount: a decimal string or a bare number, read with
// ParseAmount from its text (never through float64). null leaves it
// unchanged.
type amount int64

func (a *amount) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: %s", ErrInvalidAmount, b)
		}
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = amount(v)
	return nil
}
