package compact_test

import (
	"errors"
	"math"
	"testing"

	"github.com/coinledger/coinledger/internal/compact"
)

func TestRoundTrip(t *testing.T) {
	var w compact.Writer
	w.Uint(0)
	w.Uint(math.MaxUint64)
	w.Int(-1)
	w.Int(math.MinInt64)
	w.String("")
	w.String("wallet-é")
	w.Raw([]byte{1, 2, 3})
	r := compact.NewReader(w.Bytes())
	if got := r.Uint(); got != 0 {
		t.Errorf("uint %d", got)
	}
	if got := r.Uint(); got != math.MaxUint64 {
		t.Errorf("uint %d", got)
	}
	if got := r.Int(); got != -1 {
		t.Errorf("int %d", got)
	}
	if got := r.Int(); got != math.MinInt64 {
		t.Errorf("int %d", got)
	}
	if got := r.String(); got != "" {
		t.Errorf("string %q", got)
	}
	if got := r.String(); got != "wallet-é" {
		t.Errorf("string %q", got)
	}
	if got := r.Raw(3); string(got) != "\x01\x02\x03" {
		t.Errorf("raw %v", got)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptDataIsAnError(t *testing.T) {
	var w compact.Writer
	w.String("abcdef")
	full := w.Bytes()
	for name, data := range map[string][]byte{
		"truncated":   full[:len(full)-1],
		"left over":   append(append([]byte{}, full...), 0),
		"huge length": {0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad varint":  {0x80},
	} {
		t.Run(name, func(t *testing.T) {
			r := compact.NewReader(data)
			_ = r.String()
			if err := r.Done(); !errors.Is(err, compact.ErrCorrupt) {
				t.Fatalf("Done: %v, want ErrCorrupt", err)
			}
		})
	}
}
