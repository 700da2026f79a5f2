package hook

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func registered() *Hook {
	h := New()
	Evolve(h, Registered{ID: "h1", Wallet: "shop", Owner: "alice", URL: "https://example.com/hook",
		Kinds: []Kind{DepositSeen, Hold}, Accounts: []string{"a"}, Secret: "whsec_0123456789abcdef", At: t0})
	return h
}

// TestDecide: given a hook's events, a command decides events or an error.
func TestDecide(t *testing.T) {
	ok := Register{ID: "h1", Wallet: "shop", Owner: "alice", URL: "https://example.com/hook",
		Kinds: []Kind{Hold, DepositSeen, Hold}, Accounts: []string{"b", "a", "b"}, Secret: "whsec_0123456789abcdef", At: t0}
	with := func(f func(*Register)) Register { c := ok; f(&c); return c }
	deleted := registered()
	Evolve(deleted, Deleted{ID: "h1", By: "alice", At: t0})
	tests := []struct {
		name  string
		given *Hook
		cmd   any
		want  []Event
		err   error
	}{
		{"register: kinds and accounts canonical", New(), ok, []Event{Registered{ID: "h1", Wallet: "shop", Owner: "alice",
			URL: ok.URL, Kinds: []Kind{DepositSeen, Hold}, Accounts: []string{"a", "b"}, Secret: ok.Secret, At: t0}}, nil},
		{"register twice", registered(), ok, nil, ErrExists},
		{"no kinds", New(), with(func(c *Register) { c.Kinds = nil }), nil, ErrValidation},
		{"unknown kind", New(), with(func(c *Register) { c.Kinds = []Kind{"deposit.mined"} }), nil, ErrValidation},
		{"not a URL", New(), with(func(c *Register) { c.URL = "example.com/hook" }), nil, ErrValidation},
		{"ftp", New(), with(func(c *Register) { c.URL = "ftp://example.com/" }), nil, ErrValidation},
		{"bad id", New(), with(func(c *Register) { c.ID = "a.b" }), nil, ErrValidation},
		{"bad wallet", New(), with(func(c *Register) { c.Wallet = "-x" }), nil, ErrValidation},
		{"short secret", New(), with(func(c *Register) { c.Secret = "s" }), nil, ErrValidation},
		{"no time", New(), with(func(c *Register) { c.At = time.Time{} }), nil, ErrValidation},
		{"too many", New(), with(func(c *Register) { c.Live = MaxPerWallet }), nil, ErrTooMany},
		{"delete", registered(), Delete{By: "alice", At: t0}, []Event{Deleted{ID: "h1", By: "alice", At: t0}}, nil},
		{"delete by another", registered(), Delete{By: "bob", At: t0}, nil, ErrNotFound},
		{"delete missing", New(), Delete{By: "alice", At: t0}, nil, ErrNotFound},
		{"delete deleted", deleted, Delete{By: "alice", At: t0}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.given, tt.cmd)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events %+v, want %+v", got, tt.want)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if gr, ok := g.(Registered); ok {
					wr := w.(Registered)
					if gr.ID != wr.ID || !slices.Equal(gr.Kinds, wr.Kinds) || !slices.Equal(gr.Accounts, wr.Accounts) ||
						gr.Secret != wr.Secret || !gr.At.Equal(wr.At) {
						t.Errorf("event %d: %+v, want %+v", i, gr, wr)
					}
				} else if g != w {
					t.Errorf("event %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestWants: a live hook wants the ledger events of its kinds that touch
// one of its accounts; a deleted one wants nothing.
func TestWants(t *testing.T) {
	h := registered()
	deleted := registered()
	Evolve(deleted, Deleted{ID: "h1", By: "alice", At: t0})
	tests := []struct {
		hook     *Hook
		typ      string
		accounts []string
		want     bool
	}{
		{h, ledger.TypeDepositSeen, []string{"a"}, true},
		{h, ledger.TypeDepositSeen, []string{"b"}, false},
		{h, ledger.TypeDepositConfirmed, []string{"a"}, false},
		{h, ledger.TypeHoldExpired, []string{"", "a"}, true},
		{h, ledger.TypeDepositConfirmationsChanged, []string{"a"}, false},
		{deleted, ledger.TypeDepositSeen, []string{"a"}, false},
	}
	for _, tt := range tests {
		if got := tt.hook.Wants(tt.typ, tt.accounts); got != tt.want {
			t.Errorf("Wants(%s, %v) on deleted=%v: %v, want %v", tt.typ, tt.accounts, tt.hook.Deleted, got, tt.want)
		}
	}
	for _, typ := range []string{ledger.TypeHoldPlaced, ledger.TypeHoldReleased, ledger.TypeHoldExpired} {
		if k, _ := KindOf(typ); k != Hold || EventName(typ) == string(Hold) {
			t.Errorf("%s: kind %q, name %q", typ, k, EventName(typ))
		}
	}
	for _, k := range Kinds() {
		found := false
		for typ, kk := range kinds {
			found = found || (kk == k && EventName(typ) != "")
		}
		if !found {
			t.Errorf("kind %s stands for no ledger event", k)
		}
	}
}
