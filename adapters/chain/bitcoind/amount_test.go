package bitcoind

import (
	"encoding/json"
	"testing"
)

func TestSatoshis(t *testing.T) {
	for in, want := range map[string]int64{
		"0":                 0,
		"0.00000001":        1,
		"1e-08":             1,
		"1.2345e-04":        12_345,
		"0.1":               10_000_000,
		"0.30000000":        30_000_000,
		"1.23456789":        123_456_789,
		"20999999.99999999": 2_099_999_999_999_999,
		"-0.0000226":        -2260,
		"0.000000005":       1, // halves round away from zero, as btcutil.NewAmount
		"-0.000000005":      -1,
		"0.0000000049":      0,
		"50":                5_000_000_000,
		"5E+1":              5_000_000_000,
	} {
		got, err := satoshis(json.Number(in))
		if err != nil || got != want {
			t.Errorf("satoshis(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "1/2", "0x10", "NaN", "1e99999", "100000000000000000000", " 1"} {
		if got, err := satoshis(json.Number(in)); err == nil {
			t.Errorf("satoshis(%q) = %d, want an error", in, got)
		}
	}
}

func TestCoins(t *testing.T) {
	for in, want := range map[int64]string{
		0:                     "0.00000000",
		1:                     "0.00000001",
		123_456_789:           "1.23456789",
		2_099_999_999_999_999: "20999999.99999999",
		-2260:                 "-0.00002260",
	} {
		got := coins(in)
		if string(got) != want {
			t.Errorf("coins(%d) = %s, want %s", in, got, want)
		}
		if back, err := satoshis(got); err != nil || back != in {
			t.Errorf("satoshis(coins(%d)) = %d, %v", in, back, err)
		}
	}
}
