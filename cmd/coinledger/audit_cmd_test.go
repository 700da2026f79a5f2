package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
)

// TestAuditCheckpointCommands: while the server runs, audit checkpoint
// signs through it; the exported checkpoints verify with the exported
// keys, before and after a key rotation (which the running server picks up
// for its next checkpoint); a saved proof of liabilities verifies offline
// for its account and not for another or once changed; with the server
// stopped, audit checkpoint signs from the stores and numbering goes on.
func TestAuditCheckpointCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServed(ctx, t, dir)
	if err := s.c.setUp(2); err != nil {
		t.Fatal(err)
	}
	if status, b, err := s.c.post("/wallets/bench/transfers", map[string]string{"from": "src0", "to": "sink", "amount": "0.25000000"}, "t1"); err != nil || status != http.StatusCreated {
		t.Fatalf("transfer: %d %s %v", status, b, err)
	}
	out, err := runCLI(ctx, t, "", "audit", "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	first, err := domain.ParseCheckpoint([]byte(strings.TrimSpace(out)))
	if err != nil || first.Number != 1 {
		t.Fatalf("audit checkpoint printed %q: %v", out, err)
	}

	// A proof, saved as a user would save the endpoint's answer.
	status, proof, err := s.c.get("/wallets/bench/accounts/src0/liability-proof")
	if err != nil || status != http.StatusOK {
		t.Fatalf("liability proof: %d %s %v", status, proof, err)
	}
	proofFile := filepath.Join(dir, "proof.json")
	keysFile := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(proofFile, proof, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(ctx, t, "", "audit", "public-key", "-o", keysFile); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(ctx, t, "", "audit", "verify-proof", "-proof", proofFile, "-account", "bench/src0", "-key", keysFile)
	if err != nil || !strings.Contains(out, "ok: checkpoint 1") || !strings.Contains(out, "0.75000000 BTC of bench/src0") ||
		!strings.Contains(out, "total 2.00000000") {
		t.Fatalf("verify-proof: %q %v", out, err)
	}
	if _, err := runCLI(ctx, t, "", "audit", "verify-proof", "-proof", proofFile, "-account", "bench/src1", "-key", keysFile); err == nil {
		t.Fatal("a proof verified for another account")
	}
	changed := filepath.Join(dir, "changed.json")
	if err := os.WriteFile(changed, []byte(strings.Replace(string(proof), `"balance":"75000000"`, `"balance":"75000001"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(ctx, t, "", "audit", "verify-proof", "-proof", changed, "-account", "bench/src0", "-key", keysFile); err == nil {
		t.Fatal("a changed proof verified")
	}

	// Rotation: the server signs the next checkpoint with the new key.
	if out, err := runCLI(ctx, t, "", "audit", "rotate-key"); err != nil || !strings.Contains(out, "rotated") {
		t.Fatalf("rotate-key: %q %v", out, err)
	}
	out, err = runCLI(ctx, t, "", "audit", "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	second, err := domain.ParseCheckpoint([]byte(strings.TrimSpace(out)))
	if err != nil || second.Number != 2 || second.KeyID == first.KeyID {
		t.Fatalf("after the rotation: %q %v (first key %s)", out, err, first.KeyID)
	}
	if _, err := runCLI(ctx, t, "", "audit", "public-key", "-o", keysFile, "-url", "http://"+s.addr); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(dir, "checkpoints.ndjson")
	if _, err := runCLI(ctx, t, "", "audit", "checkpoints", "-o", exported); err != nil {
		t.Fatal(err)
	}
	checkExport(t, exported, keysFile, 2)
	// The old proof still verifies with the keys listed after the rotation.
	if _, err := runCLI(ctx, t, "", "audit", "verify-proof", "-proof", proofFile, "-account", "bench/src0", "-key", keysFile); err != nil {
		t.Fatalf("the old proof after the rotation: %v", err)
	}

	// Offline: the server stopped, the command signs from the stores.
	s.stop()
	out, err = runCLI(ctx, t, "", "audit", "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	third, err := domain.ParseCheckpoint([]byte(strings.TrimSpace(out)))
	if err != nil || third.Number != 3 || third.KeyID != second.KeyID {
		t.Fatalf("offline checkpoint: %q %v", out, err)
	}
	if _, err := runCLI(ctx, t, "", "audit", "checkpoints", "-o", exported); err != nil {
		t.Fatal(err)
	}
	checkExport(t, exported, keysFile, 3)
	st, err := os.Stat(auditKeyPath(s.cfg))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
}

// checkExport checks that the NDJSON file holds checkpoints 1 to n, each
// verifying with the keys in keysFile.
func checkExport(t *testing.T, path, keysFile string, n int) {
	t.Helper()
	doc, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := audit.ParsePublicKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	got := 0
	for sc.Scan() {
		c, err := domain.ParseCheckpoint(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		got++
		if c.Number != uint64(got) {
			t.Fatalf("line %d holds checkpoint %d", got, c.Number)
		}
		if err := c.Verify(audit.VerifyingKeys(keys)); err != nil {
			t.Fatal(err)
		}
	}
	if got != n {
		t.Fatalf("%d checkpoints exported, want %d", got, n)
	}
}
