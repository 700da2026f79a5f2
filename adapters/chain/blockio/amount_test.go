package blockio_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/adapters/chain/blockio"
)

func TestParseAmount(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int64{
		"0.00025000":           25_000,
		"14199941.00000000":    1_419_994_100_000_000,
		"0.2432256":            24_322_560,
		"3":                    300_000_000,
		"0.0":                  0,
		"000.10000000":         10_000_000,
		"0.000000010":          1,
		"0.1000000000000":      10_000_000,
		"92233720368.54775807": math.MaxInt64,
		"0.29":                 29_000_000, // float64 would give 28999999.999999996
	} {
		got, err := blockio.ParseAmount(s)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", ".", "1.", ".5", "-1", "+1", "1e8", " 1", "1 ", "0x10", "1,5", "0.000000001", "92233720368.54775808", "99999999999999999999", "NaN", "1.2.3"} {
		if got, err := blockio.ParseAmount(s); !errors.Is(err, blockio.ErrInvalidAmount) {
			t.Errorf("ParseAmount(%q) = %d, %v; want ErrInvalidAmount", s, got, err)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	t.Parallel()
	for v, want := range map[int64]string{0: "0.00000000", 1: "0.00000001", 25_000: "0.00025000", 100_000_000: "1.00000000", -150_000_000: "-1.50000000", math.MaxInt64: "92233720368.54775807", math.MinInt64: "-92233720368.54775808"} {
		if got := blockio.FormatAmount(v); got != want {
			t.Errorf("FormatAmount(%d) = %q, want %q", v, got, want)
		}
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0.00025000", "1", "0.1", "92233720368.54775807", "1.000000000", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := blockio.ParseAmount(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("%q parsed to a negative %d", s, v)
		}
		back, err := blockio.ParseAmount(blockio.FormatAmount(v))
		if err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, blockio.FormatAmount(v), back, err)
		}
		// The value is the text's: same digits once both are normalised.
		whole, frac, _ := strings.Cut(s, ".")
		frac = strings.TrimRight(frac, "0")
		w2, f2, _ := strings.Cut(blockio.FormatAmount(v), ".")
		if strings.TrimLeft(whole, "0") != strings.TrimLeft(w2, "0") || frac != strings.TrimRight(f2, "0") {
			t.Fatalf("%q read as %s", s, blockio.FormatAmount(v))
		}
	})
}
