package money_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/money"
)

var (
	sat   = money.BTC
	whole = money.MustAsset("XWH", 0)
	wei   = money.MustAsset("XWE", 18)
)

func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		asset    money.Asset
		positive bool // ParsePositive instead of Parse
		units    int64
		err      error // nil: success; every failure also wraps ErrInvalidAmount
	}{
		{in: "0.00150000", asset: sat, units: 150000},
		{in: "1", asset: sat, units: 100000000},
		{in: "1.5", asset: sat, units: 150000000},
		{in: "0", asset: sat, units: 0},
		{in: "0.00000001", asset: sat, units: 1},
		{in: "-2.25", asset: sat, units: -225000000},
		{in: "-0", asset: sat, units: 0},
		{in: "007.5", asset: sat, units: 750000000},
		{in: "92233720368.54775807", asset: sat, units: math.MaxInt64},
		{in: "-92233720368.54775807", asset: sat, units: -math.MaxInt64},
		{in: "9223372036854775807", asset: whole, units: math.MaxInt64},
		{in: "9.223372036854775807", asset: wei, units: math.MaxInt64},
		{in: "0.000000000000000001", asset: wei, units: 1},
		{in: "42", asset: whole, units: 42},

		{in: "92233720368.54775808", asset: sat, err: money.ErrOverflow},
		{in: "-92233720368.54775808", asset: sat, err: money.ErrOverflow},
		{in: "9223372036854775808", asset: whole, err: money.ErrOverflow},
		{in: "99999999999999999999", asset: sat, err: money.ErrOverflow},
		{in: "10", asset: wei, err: money.ErrOverflow},
		{in: "0.000000001", asset: sat, err: money.ErrTooManyDecimals},
		{in: "1.500000000", asset: sat, err: money.ErrTooManyDecimals},
		{in: "1.0", asset: whole, err: money.ErrTooManyDecimals},
		{in: "", asset: sat, err: money.ErrInvalidAmount},
		{in: "+1", asset: sat, err: money.ErrInvalidAmount},
		{in: "-", asset: sat, err: money.ErrInvalidAmount},
		{in: "--1", asset: sat, err: money.ErrInvalidAmount},
		{in: "-+1", asset: sat, err: money.ErrInvalidAmount},
		{in: ".5", asset: sat, err: money.ErrInvalidAmount},
		{in: "5.", asset: sat, err: money.ErrInvalidAmount},
		{in: ".", asset: sat, err: money.ErrInvalidAmount},
		{in: "1e8", asset: sat, err: money.ErrInvalidAmount},
		{in: "1E-8", asset: sat, err: money.ErrInvalidAmount},
		{in: " 1", asset: sat, err: money.ErrInvalidAmount},
		{in: "1 ", asset: sat, err: money.ErrInvalidAmount},
		{in: "1 000", asset: sat, err: money.ErrInvalidAmount},
		{in: "1,5", asset: sat, err: money.ErrInvalidAmount},
		{in: "1.2.3", asset: sat, err: money.ErrInvalidAmount},
		{in: "0x10", asset: sat, err: money.ErrInvalidAmount},
		{in: "abc", asset: sat, err: money.ErrInvalidAmount},
		{in: "NaN", asset: sat, err: money.ErrInvalidAmount},
		{in: "Inf", asset: sat, err: money.ErrInvalidAmount},
		{in: "١", asset: sat, err: money.ErrInvalidAmount}, // Arabic-Indic digit one
		{in: "1_000", asset: sat, err: money.ErrInvalidAmount},
		{in: strings.Repeat("0", 65), asset: sat, err: money.ErrInvalidAmount},
		{in: "1", asset: money.Asset{}, err: money.ErrInvalidAmount},

		{in: "0.00150000", asset: sat, positive: true, units: 150000},
		{in: "0", asset: sat, positive: true, err: money.ErrZero},
		{in: "0.00000000", asset: sat, positive: true, err: money.ErrZero},
		{in: "-1", asset: sat, positive: true, err: money.ErrNegative},
		{in: "-0", asset: sat, positive: true, err: money.ErrNegative},
		{in: "+1", asset: sat, positive: true, err: money.ErrInvalidAmount},
		{in: "1.000000001", asset: sat, positive: true, err: money.ErrTooManyDecimals},
	}
	for _, tt := range tests {
		name := tt.asset.String() + "/" + tt.in
		if tt.positive {
			name = "positive/" + name
		}
		t.Run(name, func(t *testing.T) {
			parse := money.Parse
			if tt.positive {
				parse = money.ParsePositive
			}
			got, err := parse(tt.in, tt.asset)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, money.ErrInvalidAmount) {
					t.Fatalf("Parse(%q) = %v, %v; want error %v", tt.in, got, err, tt.err)
				}
				if got != (money.Amount{}) {
					t.Fatalf("Parse(%q) returned %#v with an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got.Units() != tt.units || got.Asset() != tt.asset {
				t.Fatalf("Parse(%q) = %d %s; want %d %s", tt.in, got.Units(), got.Asset(), tt.units, tt.asset)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		a    money.Amount
		want string
	}{
		{money.New(sat, 150000), "0.00150000"},
		{money.New(sat, 0), "0.00000000"},
		{money.New(sat, 1), "0.00000001"},
		{money.New(sat, -1), "-0.00000001"},
		{money.New(sat, 100000000), "1.00000000"},
		{money.New(sat, -150000000), "-1.50000000"},
		{money.New(sat, 2100000000000000), "21000000.00000000"},
		{money.New(sat, math.MaxInt64), "92233720368.54775807"},
		{money.New(sat, math.MinInt64), "-92233720368.54775808"},
		{money.New(whole, 42), "42"},
		{money.New(whole, -42), "-42"},
		{money.New(wei, 1), "0.000000000000000001"},
		{money.Zero(whole), "0"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%d %s: String() = %q; want %q", tt.a.Units(), tt.a.Asset(), got, tt.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	ltc := money.LTC
	a, b := money.New(sat, 150000), money.New(sat, 50000)
	mustEq := func(t *testing.T, got money.Amount, err error, want int64) {
		t.Helper()
		if err != nil || got != money.New(sat, want) {
			t.Fatalf("got %v, %v; want %d", got, err, want)
		}
	}
	t.Run("add", func(t *testing.T) { s, err := a.Add(b); mustEq(t, s, err, 200000) })
	t.Run("sub", func(t *testing.T) { s, err := b.Sub(a); mustEq(t, s, err, -100000) })
	t.Run("neg", func(t *testing.T) { s, err := a.Neg(); mustEq(t, s, err, -150000) })
	t.Run("cmp", func(t *testing.T) {
		for _, c := range []struct {
			x, y money.Amount
			want int
		}{{a, b, 1}, {b, a, -1}, {a, a, 0}} {
			if got, err := c.x.Cmp(c.y); err != nil || got != c.want {
				t.Errorf("Cmp(%v, %v) = %d, %v; want %d", c.x, c.y, got, err, c.want)
			}
		}
	})
	overflow := []struct {
		name string
		f    func() (money.Amount, error)
	}{
		{"add max+1", func() (money.Amount, error) { return money.New(sat, math.MaxInt64).Add(money.New(sat, 1)) }},
		{"add min-1", func() (money.Amount, error) { return money.New(sat, math.MinInt64).Add(money.New(sat, -1)) }},
		{"sub min-1", func() (money.Amount, error) { return money.New(sat, math.MinInt64).Sub(money.New(sat, 1)) }},
		{"sub max-(-1)", func() (money.Amount, error) { return money.New(sat, math.MaxInt64).Sub(money.New(sat, -1)) }},
		{"sub 0-min", func() (money.Amount, error) { return money.New(sat, 0).Sub(money.New(sat, math.MinInt64)) }},
		{"neg min", func() (money.Amount, error) { return money.New(sat, math.MinInt64).Neg() }},
	}
	for _, o := range overflow {
		t.Run(o.name, func(t *testing.T) {
			if got, err := o.f(); !errors.Is(err, money.ErrOverflow) {
				t.Fatalf("got %v, %v; want ErrOverflow", got, err)
			}
		})
	}
	t.Run("edges that fit", func(t *testing.T) {
		s, err := money.New(sat, math.MaxInt64).Add(money.New(sat, math.MinInt64))
		mustEq(t, s, err, -1)
		s, err = money.New(sat, -1).Sub(money.New(sat, math.MaxInt64))
		mustEq(t, s, err, math.MinInt64)
	})
	mismatch := []struct {
		name string
		f    func() error
	}{
		{"add", func() error { _, err := a.Add(money.New(ltc, 1)); return err }},
		{"sub", func() error { _, err := a.Sub(money.New(ltc, 1)); return err }},
		{"cmp", func() error { _, err := a.Cmp(money.New(ltc, 1)); return err }},
		{"same code other exponent", func() error { _, err := a.Add(money.New(money.MustAsset("BTC", 2), 1)); return err }},
	}
	for _, m := range mismatch {
		t.Run("mismatch "+m.name, func(t *testing.T) {
			if err := m.f(); !errors.Is(err, money.ErrAssetMismatch) {
				t.Fatalf("got %v; want ErrAssetMismatch", err)
			}
		})
	}
}

func TestUnitsHelpers(t *testing.T) {
	cases := []struct {
		x, y     int64
		add, sub bool // fits
	}{
		{1, 2, true, true},
		{math.MaxInt64, 1, false, true},
		{math.MinInt64, -1, false, true},
		{math.MinInt64, 1, true, false},
		{math.MaxInt64, -1, true, false},
		{-1, math.MaxInt64, true, true},
		{0, math.MinInt64, true, false},
		{math.MaxInt64, math.MinInt64, true, false},
	}
	for _, c := range cases {
		if _, ok := money.AddUnits(c.x, c.y); ok != c.add {
			t.Errorf("AddUnits(%d, %d) ok = %v", c.x, c.y, ok)
		}
		if _, ok := money.SubUnits(c.x, c.y); ok != c.sub {
			t.Errorf("SubUnits(%d, %d) ok = %v", c.x, c.y, ok)
		}
	}
}

func TestJSON(t *testing.T) {
	type body struct {
		Amount money.Amount `json:"amount"`
	}
	b, err := json.Marshal(body{money.New(sat, 150000)})
	if err != nil || string(b) != `{"amount":"0.00150000"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}

	in := body{Amount: money.Zero(sat)}
	if err := json.Unmarshal([]byte(`{"amount":"1.5"}`), &in); err != nil || in.Amount != money.New(sat, 150000000) {
		t.Fatalf("Unmarshal = %v, %v", in.Amount, err)
	}
	bad := []struct {
		doc  string
		into money.Amount
		err  error
	}{
		{`{"amount":1.5}`, money.Zero(sat), money.ErrInvalidAmount},
		{`{"amount":"1e8"}`, money.Zero(sat), money.ErrInvalidAmount},
		{`{"amount":"0.000000001"}`, money.Zero(sat), money.ErrTooManyDecimals},
		{`{"amount":"1"}`, money.Amount{}, money.ErrInvalidAmount}, // no asset to parse into
		{`{"amount":"\u0031"}`, money.Zero(sat), money.ErrInvalidAmount},
	}
	for _, c := range bad {
		v := body{Amount: c.into}
		if err := json.Unmarshal([]byte(c.doc), &v); !errors.Is(err, c.err) {
			t.Errorf("Unmarshal(%s) = %v; want %v", c.doc, err, c.err)
		}
	}
	keep := body{Amount: money.New(sat, 7)}
	if err := json.Unmarshal([]byte(`{"amount":null}`), &keep); err != nil || keep.Amount.Units() != 7 {
		t.Fatalf("null: %v, %v", keep.Amount, err)
	}
}

func TestAssets(t *testing.T) {
	for _, code := range []string{"BTC", "LTC", "DOGE"} {
		a, ok := money.Lookup(code)
		if !ok || a.Code() != code || a.Exponent() != 8 {
			t.Errorf("Lookup(%q) = %v %d, %v", code, a, a.Exponent(), ok)
		}
	}
	if _, ok := money.Lookup("btc"); ok {
		t.Error(`Lookup("btc") found a coin; codes are upper case`)
	}
	if k := money.Known(); len(k) < 3 || k[0].Code() > k[1].Code() {
		t.Errorf("Known() = %v; want sorted, at least BTC, DOGE, LTC", k)
	}
	for _, c := range []struct {
		code string
		exp  int
	}{{"", 8}, {"btc", 8}, {"B-C", 8}, {"TOOLONGCODE12X", 8}, {"BTC", -1}, {"BTC", 19}} {
		if _, err := money.NewAsset(c.code, c.exp); err == nil {
			t.Errorf("NewAsset(%q, %d) succeeded", c.code, c.exp)
		}
	}
	if !(money.Asset{}).IsZero() || money.BTC.IsZero() {
		t.Error("IsZero wrong")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0.00150000", "1", "1.5", "-2.25", "0", "-0", "92233720368.54775807",
		"92233720368.54775808", "1e8", "+1", ".5", "5.", "", " 1", "0.000000001", "007", "١"} {
		for _, exp := range []uint8{0, 2, 8, 18} {
			f.Add(s, exp)
		}
	}
	f.Fuzz(func(t *testing.T, s string, exp uint8) {
		asset := money.MustAsset("FZZ", int(exp%(money.MaxExponent+1)))
		a, err := money.Parse(s, asset)
		p, perr := money.ParsePositive(s, asset)
		if err != nil {
			if !errors.Is(err, money.ErrInvalidAmount) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidAmount", s, err)
			}
			if perr == nil {
				t.Fatalf("ParsePositive(%q) accepted what Parse rejected (%v)", s, err)
			}
			return
		}
		if (perr == nil) != (a.Sign() > 0 && s[0] != '-') {
			t.Fatalf("ParsePositive(%q) = %v, %v; Parse gave %v", s, p, perr, a)
		}
		if perr == nil && p != a {
			t.Fatalf("ParsePositive(%q) = %v; Parse = %v", s, p, a)
		}
		out := a.String()
		b, err := money.Parse(out, asset)
		if err != nil || b != a {
			t.Fatalf("round trip %q -> %d -> %q -> %v, %v", s, a.Units(), out, b, err)
		}
		if again := b.String(); again != out {
			t.Fatalf("format not canonical: %q then %q", out, again)
		}
		if n, err := a.Neg(); err != nil || n.String() != negate(out) {
			t.Fatalf("Neg(%q) = %q, %v", out, n, err)
		}
	})
}

func negate(s string) string {
	if strings.HasPrefix(s, "-") {
		return s[1:]
	}
	if strings.Trim(s, "0.") == "" {
		return s
	}
	return "-" + s
}
