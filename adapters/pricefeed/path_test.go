package pricefeed

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

func TestParsePath(t *testing.T) {
	for _, in := range []string{"price", "data.rates.0.price", "a.b.c", "0"} {
		p, err := parsePath(in)
		if err != nil {
			t.Errorf("parsePath(%q): %v", in, err)
			continue
		}
		if p.String() != in {
			t.Errorf("parsePath(%q).String() = %q", in, p.String())
		}
	}
	for _, in := range []string{"", ".", "a.", ".a", "a..b", strings.Repeat("a.", 40) + "a"} {
		if _, err := parsePath(in); err == nil {
			t.Errorf("parsePath(%q): no error", in)
		}
	}
}

func TestLookup(t *testing.T) {
	const doc = `{"data":{"rates":[{"price":"1.5"},{"price":2.25,"ts":null}],"0":"key zero","n":7}}`
	tests := []struct {
		path string
		want string // JSON text; "" for an error
		err  error
	}{
		{path: "data.rates.0.price", want: `"1.5"`},
		{path: "data.rates.1.price", want: `2.25`},
		{path: "data.rates.1", want: `{"price":2.25,"ts":null}`},
		{path: "data.0", want: `"key zero"`}, // a number step names a key in an object
		{path: "data.rates.2.price", err: ErrNoValue},
		{path: "data.rates.-1", err: ErrNoValue},
		{path: "data.rates.+1", err: ErrNoValue},
		{path: "data.rates.x", err: ErrNoValue},
		{path: "data.rates.1.ts", err: ErrNoValue}, // null
		{path: "data.missing", err: ErrNoValue},
		{path: "data.n.x", err: ErrNoValue}, // into a scalar
	}
	for _, tt := range tests {
		p, err := parsePath(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.lookup([]byte(doc))
		switch {
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("%s: error %v, want %v", tt.path, err, tt.err)
		case tt.err == nil && err != nil:
			t.Errorf("%s: %v", tt.path, err)
		case tt.err == nil && string(got) != tt.want:
			t.Errorf("%s = %s, want %s", tt.path, got, tt.want)
		}
	}
	if _, err := (path{"a"}).lookup([]byte(`{"a":1`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed document: error %v, want ErrMalformed", err)
	}
}

func TestDecodePrice(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the price
		err  error
	}{
		{in: `"97123.456789012345"`, want: "97123.456789012345"},
		{in: `97123.456789012345`, want: "97123.456789012345"},
		{in: `"97123.45000000"`, want: "97123.45"},
		{in: ` 0.000000000000000001 `, want: "0.000000000000000001"},
		{in: `99999999999999999999.999999999999999999`, want: "99999999999999999999.999999999999999999"},
		{in: `"1.5000000000000000000000"`, want: "1.5"}, // trailing zeros are exact
		// Exponent notation is shifted exactly, never through float64.
		{in: `9.7123456789012345e4`, want: "97123.456789012345"},
		{in: `9.7123456789012345E+4`, want: "97123.456789012345"},
		{in: `"1.23e-5"`, want: "0.0000123"},
		{in: `1e18`, want: "1000000000000000000"},
		{in: `123456789e-18`, want: "0.000000000123456789"},
		{in: `0.1e1`, want: "1"},
		{in: `1e-18`, want: "0.000000000000000001"},
		{in: `1e-19`, err: prices.ErrTooManyDecimals},
		{in: `1.0000000000000000001`, err: prices.ErrTooManyDecimals},
		{in: `1e20`, err: prices.ErrOverflow},
		{in: `1e400`, err: prices.ErrOverflow},
		{in: `1e99999`, err: prices.ErrInvalidPrice},
		{in: `-5`, err: prices.ErrNegative},
		{in: `"-0.5e1"`, err: prices.ErrNegative},
		{in: `0`, err: prices.ErrInvalidPrice},
		{in: `0e5`, err: prices.ErrInvalidPrice},
		{in: `"-0"`, err: prices.ErrInvalidPrice},
		{in: `"1,5"`, err: prices.ErrInvalidPrice},
		{in: `".5"`, err: prices.ErrInvalidPrice},
		{in: `"0x10"`, err: prices.ErrInvalidPrice},
		{in: `"1e"`, err: prices.ErrInvalidPrice},
		{in: `"NaN"`, err: prices.ErrInvalidPrice},
		{in: `""`, err: prices.ErrInvalidPrice},
		{in: `null`, err: ErrNoValue},
		{in: `true`, err: ErrMalformed},
		{in: `{"p":1}`, err: ErrMalformed},
		{in: `1.2.3`, err: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := decodePrice([]byte(tt.in))
		switch {
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("decodePrice(%s): error %v, want %v", tt.in, err, tt.err)
		case tt.err == nil && err != nil:
			t.Errorf("decodePrice(%s): %v", tt.in, err)
		case tt.err == nil && got.String() != tt.want:
			t.Errorf("decodePrice(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDecodeTime(t *testing.T) {
	sec := time.Unix(1718000000, 0).UTC()
	tests := []struct {
		in, format string
		want       time.Time
		err        error
	}{
		{in: `1718000000`, want: sec},
		{in: `"1718000000"`, want: sec},
		{in: `1718000000.25`, want: sec.Add(250 * time.Millisecond)},
		{in: `1718000000123`, want: sec.Add(123 * time.Millisecond)},
		{in: `1718000000123456`, want: sec.Add(123456 * time.Microsecond)},
		{in: `1718000000123456789`, want: sec.Add(123456789)},
		{in: `"2024-06-10T06:13:20Z"`, want: sec},
		{in: `"2024-06-10T08:13:20.5+02:00"`, want: sec.Add(500 * time.Millisecond)},
		{in: `1718000000`, format: TimeUnix, want: sec},
		{in: `1718000000123.5`, format: TimeUnixMilli, want: sec.Add(123500 * time.Microsecond)},
		{in: `1718000000`, format: TimeUnixMilli, want: time.UnixMilli(1718000000).UTC()},
		{in: `"2024-06-10T06:13:20Z"`, format: TimeRFC3339, want: sec},
		{in: `1718000000`, format: TimeRFC3339, err: ErrInvalidTime},
		{in: `"yesterday"`, err: ErrInvalidTime},
		{in: `1.718e9`, err: ErrInvalidTime},
		{in: `-1`, err: ErrInvalidTime},
		{in: `0`, err: ErrInvalidTime},
		{in: `1718000000.0000000001`, err: ErrInvalidTime},
		{in: `253402300800`, format: TimeUnix, err: ErrInvalidTime},
		{in: `99999999999999999999999`, err: ErrInvalidTime},
		{in: `null`, err: ErrNoValue},
		{in: `[1]`, err: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := decodeTime([]byte(tt.in), tt.format)
		switch {
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("decodeTime(%s, %q): error %v, want %v", tt.in, tt.format, err, tt.err)
		case tt.err == nil && err != nil:
			t.Errorf("decodeTime(%s, %q): %v", tt.in, tt.format, err)
		case tt.err == nil && !got.Equal(tt.want):
			t.Errorf("decodeTime(%s, %q) = %s, want %s", tt.in, tt.format, got, tt.want)
		}
	}
}

// FuzzPath: parsing and following any path in any document never panics,
// and what a path finds is valid JSON.
func FuzzPath(f *testing.F) {
	f.Add("data.rates.0.price", `{"data":{"rates":[{"price":"1.5"}]}}`)
	f.Add("a.1", `{"a":[1,{"b":2}]}`)
	f.Add("0", `[1]`)
	f.Add("a..b", `{}`)
	f.Add("a", `{"a":1`)
	f.Add("a.b", `{"a":"x"}`)
	f.Fuzz(func(t *testing.T, p, doc string) {
		parsed, err := parsePath(p)
		if err != nil {
			return
		}
		v, err := parsed.lookup([]byte(doc))
		if err != nil {
			return
		}
		if !json.Valid(v) {
			t.Fatalf("lookup(%q) in %q = %q: not JSON", p, doc, v)
		}
	})
}

// FuzzDecodePrice: decoding any JSON text never panics, and a price it
// accepts is positive and equal, exactly, to the number it read.
func FuzzDecodePrice(f *testing.F) {
	for _, s := range []string{`"97123.456789012345"`, `9.7123456789012345e4`, `1e-19`, `-1`, `0`, `"1E+2"`, `null`, `{"a":1}`, `"1.5000000000000000000000"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := decodePrice([]byte(in))
		if err != nil {
			return
		}
		if p.IsZero() {
			t.Fatalf("decodePrice(%q) = 0 without error", in)
		}
		text := strings.TrimSpace(in)
		var s string
		if json.Unmarshal([]byte(text), &s) != nil {
			s = text
		}
		want, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("decodePrice(%q) = %s, but %q is not a number", in, p, s)
		}
		got, _ := new(big.Rat).SetString(p.String())
		if got.Cmp(want) != 0 {
			t.Fatalf("decodePrice(%q) = %s, want exactly %s", in, p, want.FloatString(30))
		}
		if q, err := decodePrice([]byte(p.String())); err != nil || q != p {
			t.Fatalf("decodePrice(%s) = %v, %v: does not round-trip", p, q, err)
		}
	})
}
