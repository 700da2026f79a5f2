package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/webhook"
)

// hookReceiver is a local webhook receiver that checks every request's
// signature with the secret it is given and keeps the verified bodies in
// order of arrival; its first fail requests are answered 500.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	secret   string
	fail     int
	requests int
	got      []hookDelivery
}

type hookDelivery struct {
	Header     string // Coinledger-Delivery
	Event      string // Coinledger-Event
	DeliveryID string `json:"delivery_id"`
	Kind       string `json:"event"`
	Hook       string
	Wallet     string
	Position   uint64
	EventType  string `json:"event_type"`
	Data       struct {
		ID, Account, Amount string
		Postings            []struct{ Account, Bucket, Amount string }
	}
}

func newHookReceiver(t *testing.T, fail int) *hookReceiver {
	r := &hookReceiver{t: t, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify([]byte(r.secret), req.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v (body %s)", err, body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.requests++; r.requests <= r.fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var d hookDelivery
		if err := json.Unmarshal(body, &d); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		d.Header, d.Event = req.Header.Get(webhook.HeaderDelivery), req.Header.Get(webhook.HeaderEvent)
		r.got = append(r.got, d)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

// deliveries returns the verified deliveries so far.
func (r *hookReceiver) deliveries() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookDelivery(nil), r.got...)
}

type webhookJSON struct {
	ID, Wallet, URL, Secret string
	Kinds, Accounts         []string
}

// webhookWorld is a server whose webhooks may reach loopback receivers
// over http (as an operator's allow_cidrs would allow internal ones),
// with wallet shop (confirmations 2) and users alice, bob (both with read
// and webhooks on it) and carol (read only).
func webhookWorld(t *testing.T) (admin, alice, bob, carol *client) {
	dir := t.TempDir()
	config := filepath.Join(dir, "coinledger.yml")
	yml := `
notify:
  retry: [300ms, 500ms, 1s, 1s, 2s, 2s]
  webhooks:
    # The test's receivers listen on loopback over plain http.
    allow_http: true
    allow_cidrs: ["127.0.0.0/8", "::1/128"]
`
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, admin := adminServer(t, filepath.Join(dir, "data"), "COINLEDGER_CONFIG="+config)
	admin.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "shop", "coin": "BTC",
		"permissions": []string{"read", "address", "transfer", "webhooks"}, "confirmations": 2})
	user := func(name string, perms ...string) *client {
		admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": name, "email": name + "@example.test",
			"password": "password-" + name})
		admin.expect(http.StatusOK, "PUT", "/users/"+name+"/wallets/shop", map[string]any{"permissions": perms})
		c := newClient(t, srv)
		c.login(name, "password-"+name)
		return c
	}
	return admin, user("alice", "read", "webhooks"), user("bob", "read", "webhooks"), user("carol", "read")
}

// TestWebhookDeposit: a simulated deposit (the null backend's inject)
// reaches a registered hook as deposit.seen then deposit.confirmed, each
// signed with the hook's secret (shown once), with the REST API's decimal
// amounts and the delivery id in header and body; a receiver that fails
// twice gets a third attempt, which the delivery log shows.
func TestWebhookDeposit(t *testing.T) {
	admin, alice, _, _ := webhookWorld(t)
	good, flaky := newHookReceiver(t, 0), newHookReceiver(t, 2)

	var hook, flakyHook webhookJSON
	r := alice.expect(http.StatusCreated, "POST", "/wallets/shop/webhooks", map[string]any{"url": good.srv.URL + "/hook",
		"kinds": []string{"deposit.confirmed", "deposit.seen"}, "accounts": []string{"alice-acct"}})
	r.JSON(t, &hook)
	if !strings.HasPrefix(hook.Secret, "whsec_") || hook.Wallet != "shop" ||
		strings.Join(hook.Kinds, ",") != "deposit.seen,deposit.confirmed" || r.Header.Get("Location") == "" {
		t.Fatalf("registered %+v, Location %q", hook, r.Header.Get("Location"))
	}
	good.setSecret(hook.Secret)
	alice.expect(http.StatusCreated, "POST", "/wallets/shop/webhooks", map[string]any{"url": flaky.srv.URL,
		"kinds": []string{"deposit.seen"}}).JSON(t, &flakyHook)
	flaky.setSecret(flakyHook.Secret)
	// The secret is shown once.
	var shown webhookJSON
	alice.expect(http.StatusOK, "GET", "/wallets/shop/webhooks/"+hook.ID, nil).JSON(t, &shown)
	if shown.Secret != "" || shown.ID != hook.ID {
		t.Fatalf("GET shows %+v, want the hook without its secret", shown)
	}

	admin.expect(http.StatusCreated, "POST", "/wallets/shop/accounts", map[string]string{"name": "alice-acct"})
	var addr struct{ Address string }
	admin.expect(http.StatusCreated, "POST", "/wallets/shop/accounts/alice-acct/addresses", nil).JSON(t, &addr)
	admin.expect(http.StatusCreated, "POST", "/wallets/shop/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "0.5", "confirmations": 0})
	waitFor(t, "the deposit.seen delivery", func() bool { return len(good.deliveries()) == 1 })
	admin.expect(http.StatusOK, "POST", "/wallets/shop/simulate/blocks", map[string]int{"count": 2})
	waitFor(t, "the deposit.confirmed delivery", func() bool { return len(good.deliveries()) == 2 })

	got := good.deliveries()
	for i, want := range []string{"deposit.seen", "deposit.confirmed"} {
		d := got[i]
		if d.Kind != want || d.Event != want || d.Hook != hook.ID || d.Wallet != "shop" || d.Header != d.DeliveryID ||
			d.DeliveryID != fmt.Sprintf("%s.%d.hook", hook.ID, i+1) || d.Data.Amount != "0.50000000" || d.Data.Account != "alice-acct" {
			t.Errorf("delivery %d: %+v, want %s of 0.50000000 to alice-acct", i+1, d, want)
		}
		for _, p := range d.Data.Postings {
			if !strings.HasSuffix(p.Amount, "0.50000000") {
				t.Errorf("delivery %d: posting %+v, want a decimal amount", i+1, p)
			}
		}
	}
	if got[0].Position >= got[1].Position || got[0].Data.ID != got[1].Data.ID {
		t.Errorf("seen at %d, confirmed at %d: want the same deposit, seen first", got[0].Position, got[1].Position)
	}

	// /events shows the same representation as payload, data as stored
	// (the hash covers it).
	var page struct {
		Events []struct {
			Data    struct{ Amount any }
			Payload struct{ Amount any }
		}
	}
	admin.expect(http.StatusOK, "GET", "/events?type=ledger.deposit_confirmed", nil).JSON(t, &page)
	if len(page.Events) != 1 || page.Events[0].Payload.Amount != "0.50000000" || page.Events[0].Data.Amount != float64(50_000_000) {
		t.Errorf("/events: %+v, want payload 0.50000000 and data 50000000", page.Events)
	}

	// The flaky receiver: 500, 500, then delivered, as the log shows.
	waitFor(t, "the third attempt", func() bool { return len(flaky.deliveries()) == 1 })
	var log struct {
		Deliveries []struct {
			ID, Status, Channel, Event string
			Attempts                   []struct {
				OK     bool
				Status int
			}
		}
	}
	waitFor(t, "the delivery log to show the delivery", func() bool {
		alice.expect(http.StatusOK, "GET", "/wallets/shop/webhooks/"+flakyHook.ID+"/deliveries", nil).JSON(t, &log)
		return len(log.Deliveries) == 1 && log.Deliveries[0].Status == "delivered"
	})
	d := log.Deliveries[0]
	if at := d.Attempts; len(at) != 3 || at[0].Status != 500 || at[1].Status != 500 || !at[2].OK ||
		d.Channel != "hook" || d.Event != "deposit.seen" {
		t.Fatalf("delivery log %+v, want deposit.seen: two 500s then a success", d)
	}
	if n := len(flaky.deliveries()); n != 1 {
		t.Fatalf("the flaky receiver took %d deliveries, want 1", n)
	}

	// Redelivery sends the same delivery id again.
	alice.expect(http.StatusAccepted, "POST", "/wallets/shop/webhooks/"+flakyHook.ID+"/deliveries/"+d.ID+"/redeliver", nil)
	waitFor(t, "the redelivery", func() bool { return len(flaky.deliveries()) == 2 })
	if again := flaky.deliveries()[1]; again.DeliveryID != d.ID {
		t.Fatalf("redelivered %q, want %q", again.DeliveryID, d.ID)
	}
}

// TestWebhookOwnership: a hook is its owner's: another user with the same
// permissions on the wallet gets 404 for it (show, delete, delivery log)
// and does not see it listed; a user without the webhooks permission gets
// 403; a deleted hook is gone.
func TestWebhookOwnership(t *testing.T) {
	_, alice, bob, carol := webhookWorld(t)
	var h webhookJSON
	alice.expect(http.StatusCreated, "POST", "/wallets/shop/webhooks", map[string]any{"url": "http://127.0.0.1:9/hook",
		"kinds": []string{"transfer", "hold"}}).JSON(t, &h)
	for _, req := range []struct{ method, path string }{
		{"GET", "/wallets/shop/webhooks/" + h.ID},
		{"DELETE", "/wallets/shop/webhooks/" + h.ID},
		{"GET", "/wallets/shop/webhooks/" + h.ID + "/deliveries"},
		{"GET", "/wallets/shop/webhooks/no-such-hook"},
	} {
		if r := bob.do(req.method, req.path, nil); r.Status != http.StatusNotFound || r.problemCode() != "not_found" {
			t.Errorf("bob %s %s: %d %s, want 404 not_found", req.method, req.path, r.Status, r.Body)
		}
	}
	var list struct{ Webhooks []webhookJSON }
	bob.expect(http.StatusOK, "GET", "/wallets/shop/webhooks", nil).JSON(t, &list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("bob lists %+v", list.Webhooks)
	}
	alice.expect(http.StatusOK, "GET", "/wallets/shop/webhooks?min_position=1", nil).JSON(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != h.ID || list.Webhooks[0].Secret != "" {
		t.Fatalf("alice lists %+v, want her hook without its secret", list.Webhooks)
	}
	if r := carol.do("POST", "/wallets/shop/webhooks", map[string]any{"url": "http://127.0.0.1:9/hook",
		"kinds": []string{"transfer"}}); r.Status != http.StatusForbidden || r.problemCode() != "permission_denied" {
		t.Errorf("carol without webhooks: %d %s, want 403 permission_denied", r.Status, r.Body)
	}
	alice.expect(http.StatusNoContent, "DELETE", "/wallets/shop/webhooks/"+h.ID, nil)
	alice.expect(http.StatusNotFound, "GET", "/wallets/shop/webhooks/"+h.ID, nil)
	alice.expect(http.StatusOK, "GET", "/wallets/shop/webhooks", nil).JSON(t, &list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("after delete alice lists %+v", list.Webhooks)
	}
}

// TestWebhookRefusals: URLs at private, link-local (metadata) or CGNAT
// addresses the operator did not allowlist are refused with 422
// webhook_target_forbidden, unknown kinds and an empty kind list with
// validation_failed; nothing is registered.
func TestWebhookRefusals(t *testing.T) {
	_, alice, _, _ := webhookWorld(t)
	for _, url := range []string{"http://10.0.0.1/hook", "http://169.254.169.254/latest", "http://100.64.1.1/",
		"http://192.168.1.10:8080/x", "ftp://127.0.0.1/x"} {
		r := alice.do("POST", "/wallets/shop/webhooks", map[string]any{"url": url, "kinds": []string{"deposit.seen"}})
		if r.Status != http.StatusUnprocessableEntity || r.problemCode() != "webhook_target_forbidden" {
			t.Errorf("url %s: %d %s, want 422 webhook_target_forbidden", url, r.Status, r.Body)
		}
	}
	for _, kinds := range [][]string{{}, {"deposit.seen", "deposit.mined"}} {
		r := alice.doInvalid("POST", "/wallets/shop/webhooks", map[string]any{"url": "http://127.0.0.1:9/", "kinds": kinds})
		if r.Status != http.StatusUnprocessableEntity || r.problemCode() != "validation_failed" {
			t.Errorf("kinds %v: %d %s, want 422 validation_failed", kinds, r.Status, r.Body)
		}
	}
	var list struct{ Webhooks []webhookJSON }
	alice.expect(http.StatusOK, "GET", "/wallets/shop/webhooks", nil).JSON(t, &list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("refused hooks were registered: %+v", list.Webhooks)
	}
}
