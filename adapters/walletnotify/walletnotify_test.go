package walletnotify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

const txid = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

func TestParseTxID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{txid, txid, true},
		{strings.ToUpper(txid), txid, true},
		{" \t" + txid + "\r\n", txid, true},
		{"", "", false},
		{txid[:63], "", false},
		{txid + "0", "", false},
		{txid[:63] + "g", "", false},
		{"0x" + txid[:62], "", false},
		{txid[:32] + " " + txid[33:], "", false},
	} {
		got, err := walletnotify.ParseTxID(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("ParseTxID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, walletnotify.ErrInvalidTxID) {
			t.Errorf("ParseTxID(%q) = %q, %v; want ErrInvalidTxID", tc.in, got, err)
		}
	}
}

func FuzzParseTxID(f *testing.F) {
	for _, s := range []string{txid, strings.ToUpper(txid), " " + txid + "\n", "", "xyz", txid[:63] + "G", txid + txid, "\u00e9" + txid[2:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := walletnotify.ParseTxID(s)
		trimmed := strings.TrimSpace(s)
		wantOK := len(trimmed) == 64 && strings.Trim(strings.ToLower(trimmed), "0123456789abcdef") == ""
		if wantOK != (err == nil) {
			t.Fatalf("ParseTxID(%q) error %v, want ok=%v", s, err, wantOK)
		}
		if err != nil {
			if !errors.Is(err, walletnotify.ErrInvalidTxID) || got != "" {
				t.Fatalf("ParseTxID(%q) = %q, %v: want \"\" and ErrInvalidTxID", s, got, err)
			}
			return
		}
		if got != strings.ToLower(trimmed) {
			t.Fatalf("ParseTxID(%q) = %q, want %q", s, got, strings.ToLower(trimmed))
		}
		again, err := walletnotify.ParseTxID(got)
		if err != nil || again != got {
			t.Fatalf("ParseTxID(%q) = %q, %v: not a fixed point", got, again, err)
		}
	})
}
