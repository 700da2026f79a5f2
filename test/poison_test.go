package test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// TestPoisonEventParksOneReadModel: a price tick no code can decode, in
// the log of a real server, parks the prices read model at it (/status
// shows where and why, /readyz answers 503 naming it) and nothing else:
// the process runs, the API answers, and the other read models advance
// past the poison (a transfer made afterwards is read back at once, a new
// user is listed, each of them is at the store's head).
func TestPoisonEventParksOneReadModel(t *testing.T) {
	dir := t.TempDir()
	s, c := adminServer(t, dir)
	setUpWallet(t, c, "hot", map[string]string{"alice": "1.00000000"}, "alice", "bob")
	s.Stop(t)

	// The poison, appended while the server is down (it holds the store).
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, prices.StreamPrefix+"BTC-USD", eventstore.Any,
		eventstore.EventData{Type: prices.TypePriceTicked, Data: []byte(`["not a tick"]`)})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	poison := res.Position

	s, c = adminServer(t, dir)
	var parked projectionJSON
	for deadline := time.Now().Add(30 * time.Second); parked.State != "parked"; time.Sleep(50 * time.Millisecond) {
		st, err := c.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Projections {
			if p.Name == "prices" {
				parked = p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prices not parked within 30s: %+v", parked)
		}
	}
	if parked.ParkedAt != poison || parked.Position != poison-1 || parked.Error == "" {
		t.Errorf("prices: %+v, want parked at %d (position %d) with the error", parked, poison, poison-1)
	}
	if code, body := get(t, s.URL+"/readyz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "prices parked at "+strconv.FormatUint(poison, 10)) {
		t.Errorf("/readyz: %d %s, want 503 naming prices and the position", code, body)
	}

	// The API answers and the other read models go on.
	r := c.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.25"},
		"Idempotency-Key", "after-poison")
	if r.Header.Get("Read-Model-Behind") != "" {
		t.Errorf("transfer after the poison: Read-Model-Behind %q: a parked prices model held back the wallet models",
			r.Header.Get("Read-Model-Behind"))
	}
	if b := c.balance("hot", "bob"); b.Available != "0.25000000" {
		t.Errorf("bob after the transfer: %+v, want 0.25000000", b)
	}
	c.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "dave", "email": "dave@example.com",
		"password": "password-dave"})
	head := storeHead(t, c)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := c.status()
		if err != nil {
			t.Fatal(err)
		}
		behind := ""
		for _, p := range st.Projections {
			switch {
			case p.Name == "prices":
				if p.State != "parked" || p.Position != poison-1 {
					t.Fatalf("prices after the other writes: %+v, want still parked at %d", p, poison)
				}
			case p.State == "parked" || p.Error != "":
				t.Fatalf("%s: %+v: the poison of prices stopped it too", p.Name, p)
			case p.State != "running" || p.Position < head:
				behind = p.Name
			}
		}
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach the head %d within 30s: %+v", behind, head, st.Projections)
		}
	}
	var list struct{ Users []struct{ Username string } }
	if err := json.Unmarshal(c.expect(http.StatusOK, "GET", "/users", nil).Body, &list); err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, u := range list.Users {
		listed = listed || u.Username == "dave"
	}
	if !listed {
		t.Errorf("GET /users after the poison: %+v, want dave listed", list.Users)
	}
	select {
	case <-s.exited:
		t.Fatalf("coinledger exited on a poison event:\n%s", s.Log())
	default:
	}
}
