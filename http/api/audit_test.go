package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/apitest"
	"github.com/coinledger/coinledger/projections"
)

// auditServer is a test server with a running checkpoint signer (which
// signs only on demand) and its prover.
func auditServer(t *testing.T) *testServer {
	t.Helper()
	keys, err := audit.NewKeyring(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	get := func() (*audit.Keyring, error) { return keys, nil }
	var deps api.AuditDeps
	ts := newTestServerOver(t, func(d *api.Deps) { d.Audit = deps }, func(store *sqlite.Store) []projections.Projection {
		signer := audit.NewSigner(store, audit.SignerOptions{Keys: get, Every: -1, Interval: -1})
		deps = api.AuditDeps{Signer: signer, Prover: audit.NewProver(store, get, signer), Keys: get}
		return []projections.Projection{projections.Follow(signer)}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- deps.Signer.Run(ctx, func(ctx context.Context) error { return ts.Runner.CaughtUp(ctx, audit.SignerName) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("signer: %v", err)
		}
	})
	return ts
}

// TestAuditCheckpointsAndProofs drives the audit endpoints through the
// router: checkpoints on demand (admin, auditor; not a plain user), their
// list and the public keys they verify with, and the proof of liabilities
// of an account, which verifies against the signed root for a caller with
// read on the wallet and is refused to others.
func TestAuditCheckpointsAndProofs(t *testing.T) {
	ts := auditServer(t)
	admin := ts.admin(t)
	n := 0
	key := func() http.Header { n++; return apitest.Header("Idempotency-Key", fmt.Sprintf("k-%d", n)) }
	admin.Post("/wallets", map[string]any{"name": "w", "coin": "BTC", "permissions": []string{"read", "transfer"}}).
		Expect(t, http.StatusCreated)
	for _, a := range []string{"alice", "bob"} {
		admin.Post("/wallets/w/accounts", map[string]any{"name": a}).Expect(t, http.StatusCreated)
	}
	admin.Post("/wallets/w/accounts/alice/imports", map[string]any{"amount": "1.50000000", "reason": "seed"}, key()).
		Expect(t, http.StatusCreated)
	admin.Post("/wallets/w/transfers", map[string]any{"from": "alice", "to": "bob", "amount": "0.25000000"}, key()).
		Expect(t, http.StatusCreated)
	for name, grant := range map[string][]string{"reader": {"read"}, "mover": {"transfer"}, "stranger": nil} {
		ts.addUser(t, admin, name)
		if grant != nil {
			admin.Put("/users/"+name+"/wallets/w", map[string]any{"permissions": grant}).Expect(t, http.StatusOK)
		}
	}
	admin.Post("/users", map[string]any{"username": "auditor", "email": "auditor@example.com", "password": "password-auditor",
		"roles": []string{"auditor"}}).Expect(t, http.StatusCreated)
	as := func(name string) *apitest.Client {
		return ts.client(t).WithToken(ts.login(t, name, "password-"+name, "127.0.0.1").AccessToken)
	}
	reader, auditor := as("reader"), as("auditor")

	// Checkpoints on demand.
	var first, second domain.Checkpoint
	admin.Post("/audit/checkpoints", nil).Expect(t, http.StatusCreated).JSON(t, &first)
	reader.Post("/audit/checkpoints", nil).ExpectProblem(t, http.StatusForbidden, "permission_denied")
	auditor.Post("/audit/checkpoints", nil).Expect(t, http.StatusCreated).JSON(t, &second)
	head, _ := ts.Store.Head(context.Background())
	if first.Number != 1 || second.Number != 2 || second.Position != head-1 {
		t.Fatalf("checkpoints %d@%d and %d@%d, head %d", first.Number, first.Position, second.Number, second.Position, head)
	}

	// The list, paged, and the keys.
	var page struct {
		Checkpoints []domain.Checkpoint `json:"checkpoints"`
		Next        uint64              `json:"next"`
	}
	auditor.Get("/audit/checkpoints?limit=1&from=2").Expect(t, http.StatusOK).JSON(t, &page)
	if len(page.Checkpoints) != 1 || page.Checkpoints[0].Number != 2 || page.Next != 3 {
		t.Fatalf("page %+v", page)
	}
	reader.Get("/audit/checkpoints").ExpectProblem(t, http.StatusForbidden, "permission_denied")
	keysDoc := ts.client(t).Get("/audit/public-key").Expect(t, http.StatusOK)
	pubs, err := audit.ParsePublicKeys(keysDoc.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 1 || !pubs[0].Current || pubs[0].ID != second.KeyID {
		t.Fatalf("public keys %+v, signed by %s", pubs, second.KeyID)
	}
	for _, c := range []domain.Checkpoint{first, second, page.Checkpoints[0]} {
		if err := c.Verify(audit.VerifyingKeys(pubs)); err != nil {
			t.Fatal(err)
		}
	}

	// The proof of liabilities, at the newest checkpoint and at the first.
	for _, q := range []string{"", "?checkpoint=1"} {
		r := reader.Get("/wallets/w/accounts/alice/liability-proof"+q).Expect(t, http.StatusOK)
		var got struct {
			Account    string          `json:"account"`
			Checkpoint json.RawMessage `json:"checkpoint"`
			Proof      json.RawMessage `json:"proof"`
		}
		r.JSON(t, &got)
		c, err := domain.ParseCheckpoint(got.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := liability.ParseProof(got.Proof)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(audit.VerifyingKeys(pubs)); err != nil {
			t.Fatal(err)
		}
		root, _ := c.Liability("BTC")
		if err := liability.Verify(proof, root, got.Account); err != nil || got.Account != "w/alice" {
			t.Fatalf("%s: proof for %q: %v", q, got.Account, err)
		}
		if proof.Balance != 125_000_000 || root.Total != 150_000_000 {
			t.Fatalf("%s: balance %d of total %d", q, proof.Balance, root.Total)
		}
		if q != "" && c.Number != 1 || q == "" && c.Number != 2 {
			t.Fatalf("%s: checkpoint %d", q, c.Number)
		}
	}
	admin.Get("/wallets/w/accounts/bob/liability-proof").Expect(t, http.StatusOK)
	as("mover").Get("/wallets/w/accounts/alice/liability-proof").ExpectProblem(t, http.StatusForbidden, "permission_denied")
	as("stranger").Get("/wallets/w/accounts/alice/liability-proof").ExpectProblem(t, http.StatusNotFound, "not_found")
	reader.Get("/wallets/w/accounts/alice/liability-proof?checkpoint=9").ExpectProblem(t, http.StatusNotFound, "unknown_checkpoint")
	reader.Get("/wallets/w/accounts/nobody/liability-proof").ExpectProblem(t, http.StatusNotFound, "unknown_account")
	reader.Get("/wallets/w/accounts/@fees/liability-proof").ExpectProblem(t, http.StatusNotFound, "unknown_account")
}

// TestAuditEndpointsWithoutSigner: a server wired without checkpoint
// signing says so (503), and lists no checkpoints.
func TestAuditEndpointsWithoutSigner(t *testing.T) {
	ts := newTestServer(t, nil)
	admin := ts.admin(t)
	admin.Post("/audit/checkpoints", nil).ExpectProblem(t, http.StatusServiceUnavailable, "signer_unavailable")
	ts.client(t).Get("/audit/public-key").ExpectProblem(t, http.StatusServiceUnavailable, "signer_unavailable")
	var page struct {
		Checkpoints []json.RawMessage `json:"checkpoints"`
	}
	admin.Get("/audit/checkpoints").Expect(t, http.StatusOK).JSON(t, &page)
	if page.Checkpoints == nil || len(page.Checkpoints) != 0 {
		t.Fatalf("checkpoints %v, want []", page.Checkpoints)
	}
}
