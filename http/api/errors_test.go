package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/labstack/echo/v4"
)

// TestInsufficientFundsDetailNeedsRead: the 409 insufficient_funds
// problem tells the balance only to callers with the effective read
// permission on the wallet; others learn the outcome, not the amounts.
func TestInsufficientFundsDetailNeedsRead(t *testing.T) {
	h := &handlers{d: Deps{Logger: slog.New(slog.DiscardHandler)}}
	refusal := fmt.Errorf("transfer tr-1: %w: alice has 0.50000000 available, needs 0.70000000", ledger.ErrInsufficientFunds)
	hot := ledger.Wallet{Name: "hot", Permissions: []ledger.Permission{ledger.PermRead, ledger.PermTransfer}}
	noRead := ledger.Wallet{Name: "hot", Permissions: []ledger.Permission{ledger.PermTransfer}}
	for _, tc := range []struct {
		name    string
		access  *users.Access
		wallet  *ledger.Wallet
		reveals bool
	}{
		{"transfer without read", &users.Access{Username: "bot", Grants: map[string][]string{"hot": {"transfer"}}}, &hot, false},
		{"read and transfer", &users.Access{Username: "ann", Grants: map[string][]string{"hot": {"read", "transfer"}}}, &hot, true},
		{"read on another wallet", &users.Access{Username: "ann", Grants: map[string][]string{"cold": {"read"}, "hot": {"transfer"}}}, &hot, false},
		{"read granted, not allowed by the wallet", &users.Access{Username: "ann", Grants: map[string][]string{"hot": {"read", "transfer"}}}, &noRead, false},
		{"admin", &users.Access{Username: "root", Roles: []string{identity.RoleAdmin}}, &hot, true},
		{"no wallet in the request", &users.Access{Username: "ann", Grants: map[string][]string{"hot": {"read"}}}, nil, false},
		{"no caller", nil, &hot, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/api/v1/wallets/hot/transfers", nil), rec)
			if tc.access != nil {
				c.Set(accessKey, *tc.access)
			}
			if tc.wallet != nil {
				c.Set(walletKey, *tc.wallet)
			}
			h.errorHandler(refusal, c)
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusConflict || p.Code != "insufficient_funds" {
				t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
			}
			if shown := strings.Contains(p.Detail, "0.5"); shown != tc.reveals || !strings.Contains(p.Detail, "insufficient funds") {
				t.Fatalf("detail %q: amounts shown %v, want %v", p.Detail, shown, tc.reveals)
			}
		})
	}
}

// TestFailedStoreAnswers503: a write refused by a fail-stopped event store
// is 503 store_failed, one that could not reach the store 503
// store_unavailable, with a fixed text (not the store's path or cause),
// and the cause goes to the log.
func TestFailedStoreAnswers503(t *testing.T) {
	for _, tc := range []struct {
		code, cause string
		err         error
	}{
		{"store_failed", "disk I/O error", fmt.Errorf("append wallet-hot: %w: it refuses appends until a restart: /srv/data/events.db: disk I/O error",
			eventstore.ErrStoreFailed)},
		{"store_unavailable", "connection reset by peer", fmt.Errorf("append wallet-hot: %w: write tcp 10.0.0.1:5432: connection reset by peer",
			eventstore.ErrUnavailable)},
	} {
		t.Run(tc.code, func(t *testing.T) {
			var logs strings.Builder
			h := &handlers{d: Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}
			e := echo.New()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest(http.MethodPost, "/api/v1/wallets/hot/transfers", nil), rec)
			h.errorHandler(tc.err, c)
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusServiceUnavailable || p.Code != tc.code {
				t.Fatalf("answered %d %+v, want 503 %s", rec.Code, p, tc.code)
			}
			if strings.Contains(p.Detail, "/srv/data") || strings.Contains(p.Detail, "10.0.0.1") || strings.Contains(p.Detail, tc.cause) {
				t.Fatalf("detail tells the store's internals: %q", p.Detail)
			}
			if !strings.Contains(logs.String(), tc.cause) {
				t.Fatalf("the cause is not logged: %s", logs.String())
			}
		})
	}
}
