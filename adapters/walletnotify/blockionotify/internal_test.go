package blockionotify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

const fuzzToken = "5pmPQkt1ntyfDTTPqWju7hXej9-XzZxlvZTaDIOWuP0"

func TestDedupeWindowExpires(t *testing.T) {
	t.Parallel()
	calls := 0
	h, err := NewWebhook(WebhookConfig{Coin: "BTC", Token: fuzzToken, DedupeWindow: time.Minute}, func(context.Context, walletnotify.Notification) error {
		calls++
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	h.now = func() time.Time { return now }
	body := `{"notification_id":"n1","type":"address","data":{"txid":"` + strings.Repeat("5a", 32) + `","confirmations":0},"created_at":1}`
	send := func() {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, WebhookPathPrefix+fuzzToken, strings.NewReader(body)))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	send()
	now = now.Add(59 * time.Second)
	send()
	if calls != 1 {
		t.Fatalf("%d calls within the window", calls)
	}
	now = now.Add(2 * time.Second)
	send()
	if calls != 2 {
		t.Fatalf("%d calls after the window", calls)
	}
	// Sweeping forgets expired events and keeps the rest.
	for i := 0; i < dedupeSweep; i++ {
		h.reserve(strings.Repeat("k", i+1))
	}
	now = now.Add(2 * time.Minute)
	for i := 0; i < dedupeSweep; i++ {
		h.reserve(strings.Repeat("j", i+1))
	}
	h.mu.Lock()
	n := len(h.seen)
	h.mu.Unlock()
	if n != dedupeSweep {
		t.Fatalf("%d events remembered after a sweep, want %d", n, dedupeSweep)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"notification_id":"8a5","delivery_attempt":1,"type":"address","data":{"network":"BTCTEST","txid":"` + strings.Repeat("ab", 32) + `","confirmations":1},"created_at":1426104819}`,
		`{"type":"account","data":{"txid":" ` + strings.Repeat("AB", 32) + ` "}}`,
		`{"type":"new-transactions","data":{"txid":"` + strings.Repeat("g", 64) + `"}}`,
		`{"type":"ping"}`,
		`{"status":"fail","data":{"error_message":"no"}}`,
		`{"type":"address","data":null}`,
		`[]`, `null`, `"x"`, `{`,
	} {
		f.Add([]byte(s))
	}
	h, err := NewWebhook(WebhookConfig{Coin: "BTC", Token: fuzzToken}, func(_ context.Context, n walletnotify.Notification) error {
		if id, err := walletnotify.ParseTxID(n.TxID); err != nil || id != n.TxID {
			panic("an invalid txid reached the sink: " + n.TxID)
		}
		return nil
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decode(b)
		if err == nil && n.kind == kindTx {
			if id, perr := walletnotify.ParseTxID(n.txid); perr != nil || id != n.txid {
				t.Fatalf("decoded txid %q is not valid", n.txid)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, WebhookPathPrefix+fuzzToken, strings.NewReader(string(b))))
		switch {
		case w.Code == http.StatusOK, w.Code == http.StatusBadRequest, w.Code == http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", w.Code, b)
		}
		if (err != nil) != (w.Code == http.StatusBadRequest) && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("decode error %v but status %d", err, w.Code)
		}
	})
}
