package prices_test

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/prices"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the result
		err  error  // nil: success; every failure also wraps ErrInvalidPrice
	}{
		{in: "64000.12", want: "64000.12"},
		{in: "64000.10", want: "64000.1"},
		{in: "64000.000000000000000000", want: "64000"},
		{in: "0", want: "0"},
		{in: "0.0", want: "0"},
		{in: "000", want: "0"},
		{in: "007.50", want: "7.5"},
		{in: "0.000000000000000001", want: "0.000000000000000001"},
		{in: "1", want: "1"},
		{in: "18446744073709551616", want: "18446744073709551616"}, // 2^64
		{in: "99999999999999999999.999999999999999999", want: "99999999999999999999.999999999999999999"},
		{in: "00000099999999999999999999", want: "99999999999999999999"},
		{in: "12345678901234567890.123456789012345678", want: "12345678901234567890.123456789012345678"},

		{in: "100000000000000000000", err: prices.ErrOverflow},
		{in: "123456789012345678901.5", err: prices.ErrOverflow},
		{in: "0.0000000000000000001", err: prices.ErrTooManyDecimals},
		{in: "1.0000000000000000000", err: prices.ErrTooManyDecimals},
		{in: "-1", err: prices.ErrNegative},
		{in: "-0", err: prices.ErrNegative},
		{in: "", err: prices.ErrInvalidPrice},
		{in: "+1", err: prices.ErrInvalidPrice},
		{in: ".5", err: prices.ErrInvalidPrice},
		{in: "5.", err: prices.ErrInvalidPrice},
		{in: ".", err: prices.ErrInvalidPrice},
		{in: "1e8", err: prices.ErrInvalidPrice},
		{in: "1E-8", err: prices.ErrInvalidPrice},
		{in: "6.4e4", err: prices.ErrInvalidPrice},
		{in: " 1", err: prices.ErrInvalidPrice},
		{in: "1 ", err: prices.ErrInvalidPrice},
		{in: "1,5", err: prices.ErrInvalidPrice},
		{in: "1_000", err: prices.ErrInvalidPrice},
		{in: "1.2.3", err: prices.ErrInvalidPrice},
		{in: "0x10", err: prices.ErrInvalidPrice},
		{in: "NaN", err: prices.ErrInvalidPrice},
		{in: "Inf", err: prices.ErrInvalidPrice},
		{in: "١", err: prices.ErrInvalidPrice},
		{in: strings.Repeat("0", 65), err: prices.ErrInvalidPrice},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := prices.Parse(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, prices.ErrInvalidPrice) {
					t.Fatalf("Parse(%q) = %v, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Fatalf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if back := prices.MustParse(got.String()); back != got {
				t.Fatalf("round trip of %s gives %s", got, back)
			}
		})
	}
}

func TestCmpAcrossScales(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.5", "1.50", 0},
		{"1.5", "1.500000000000000000", 0},
		{"64000.12", "64000.119999999999999999", 1},
		{"64000.12", "64000.120000000000000001", -1},
		{"0.000000000000000001", "0", 1},
		{"18446744073709551616", "18446744073709551615.999999999999999999", 1}, // crosses the 64-bit word
		{"99999999999999999999.999999999999999999", "99999999999999999999.99999999999999999", 1},
		{"2", "10", -1},
		{"10", "9.999", 1},
	}
	for _, tt := range tests {
		a, b := prices.MustParse(tt.a), prices.MustParse(tt.b)
		if got := a.Cmp(b); got != tt.want {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := b.Cmp(a); got != -tt.want {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
		if (a == b) != (tt.want == 0) || a.Less(b) != (tt.want < 0) {
			t.Errorf("== or Less disagree with Cmp for %s, %s", tt.a, tt.b)
		}
	}
}

func TestArithmetic(t *testing.T) {
	p := prices.MustParse
	tests := []struct {
		a, b     string
		sum, dif string // "" with sumErr / difErr
		sumErr   error
		difErr   error
	}{
		{a: "64000.12", b: "0.88", sum: "64001", dif: "63999.24"},
		{a: "18446744073709551615.999999999999999999", b: "0.000000000000000001", sum: "18446744073709551616", dif: "18446744073709551615.999999999999999998"},
		{a: "1", b: "1", sum: "2", dif: "0"},
		{a: "1", b: "1.000000000000000001", sum: "2.000000000000000001", difErr: prices.ErrNegative},
		{a: "99999999999999999999.999999999999999999", b: "0.000000000000000001", sumErr: prices.ErrOverflow, dif: "99999999999999999999.999999999999999998"},
		{a: "99999999999999999999", b: "99999999999999999999", sumErr: prices.ErrOverflow, dif: "0"},
	}
	for _, tt := range tests {
		s, err := p(tt.a).Add(p(tt.b))
		if tt.sumErr != nil {
			if !errors.Is(err, tt.sumErr) {
				t.Errorf("%s + %s = %s, %v; want %v", tt.a, tt.b, s, err, tt.sumErr)
			}
		} else if err != nil || s != p(tt.sum) {
			t.Errorf("%s + %s = %s, %v; want %s", tt.a, tt.b, s, err, tt.sum)
		}
		d, err := p(tt.a).Sub(p(tt.b))
		if tt.difErr != nil {
			if !errors.Is(err, tt.difErr) {
				t.Errorf("%s - %s = %s, %v; want %v", tt.a, tt.b, d, err, tt.difErr)
			}
		} else if err != nil || d != p(tt.dif) {
			t.Errorf("%s - %s = %s, %v; want %s", tt.a, tt.b, d, err, tt.dif)
		}
	}
	if e := prices.Epsilon(); e.String() != "0.000000000000000001" {
		t.Errorf("Epsilon = %s", e)
	}
	if m := prices.Max(); m != p("99999999999999999999.999999999999999999") {
		t.Errorf("Max = %s", m)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		units    uint64
		decimals int
		want     string
	}{
		{6400012, 2, "64000.12"},
		{0, 0, "0"},
		{1, 18, "0.000000000000000001"},
		{18446744073709551615, 0, "18446744073709551615"},
		{18446744073709551615, 18, "18.446744073709551615"},
		{150000, 8, "0.0015"},
	}
	for _, tt := range tests {
		got, err := prices.New(tt.units, tt.decimals)
		if err != nil || got != prices.MustParse(tt.want) {
			t.Errorf("New(%d, %d) = %s, %v; want %s", tt.units, tt.decimals, got, err, tt.want)
		}
	}
	for _, d := range []int{-1, 19} {
		if _, err := prices.New(1, d); !errors.Is(err, prices.ErrInvalidPrice) {
			t.Errorf("New(1, %d): err %v, want ErrInvalidPrice", d, err)
		}
	}
}

func TestStringFixed(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"64000.1", 2, "64000.10"},
		{"64000", 2, "64000.00"},
		{"0.123", 2, "0.123"}, // never rounds
		{"5", 0, "5"},
		{"5", -3, "5"},
		{"5", 30, "5.000000000000000000"},
	}
	for _, tt := range tests {
		if got := prices.MustParse(tt.in).StringFixed(tt.n); got != tt.want {
			t.Errorf("StringFixed(%s, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestPriceJSON(t *testing.T) {
	type doc struct {
		P prices.Price `json:"p"`
	}
	b, err := json.Marshal(doc{P: prices.MustParse("64000.12")})
	if err != nil || string(b) != `{"p":"64000.12"}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"p":"0064000.120"}`), &d); err != nil || d.P != prices.MustParse("64000.12") {
		t.Fatalf("unmarshal: %v, %v", d.P, err)
	}
	for _, bad := range []string{`{"p":64000.12}`, `{"p":"6.4e4"}`, `{"p":"-1"}`, `{"p":true}`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}

// ratOf is the reference reading of a decimal string, for the fuzz test.
func ratOf(s string) (*big.Rat, bool) { return new(big.Rat).SetString(s) }

func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{
		"64000.12", "0", "0.000000000000000001", "99999999999999999999.999999999999999999",
		"100000000000000000000", "1e8", "-1", "+1", ".5", "5.", "1.0000000000000000000", "00012.3400",
		"18446744073709551616", "18446744073709551615.999999999999999999", "",
	} {
		f.Add(s)
	}
	maxRat, _ := ratOf("99999999999999999999.999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := prices.Parse(s)
		if err != nil {
			if !errors.Is(err, prices.ErrInvalidPrice) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalidPrice", s, err)
			}
			// Inputs within the grammar and range must parse.
			if grammatical(s) && len(s) <= 64 {
				if r, _ := ratOf(s); r.Cmp(maxRat) <= 0 {
					t.Fatalf("Parse(%q) rejected a valid price: %v", s, err)
				}
			}
			return
		}
		if !grammatical(s) {
			t.Fatalf("Parse(%q) = %s accepted input outside [0-9]+(.[0-9]{1,18})?", s, p)
		}
		want, _ := ratOf(s)
		got, ok := ratOf(p.String())
		if !ok || got.Cmp(want) != 0 {
			t.Fatalf("Parse(%q) = %s, value differs", s, p)
		}
		back, err := prices.Parse(p.String())
		if err != nil || back != p || back.Cmp(p) != 0 {
			t.Fatalf("round trip of %q: %s, %v", s, back, err)
		}
		if fixed := p.StringFixed(prices.Decimals); prices.MustParse(fixed) != p {
			t.Fatalf("StringFixed round trip of %q: %s", s, fixed)
		}
		// Order agrees with the exact value, across scales.
		q := prices.MustParse("64000.12")
		qr, _ := ratOf("64000.12")
		if p.Cmp(q) != want.Cmp(qr) {
			t.Fatalf("Cmp(%s, 64000.12) = %d, want %d", p, p.Cmp(q), want.Cmp(qr))
		}
	})
}

// grammatical reports whether s matches [0-9]+(\.[0-9]{1,18})?.
func grammatical(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && (frac == "" || len(frac) > prices.Decimals)) {
		return false
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}
