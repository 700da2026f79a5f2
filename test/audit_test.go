package test

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
)

// TestAuditProofEndToEnd: the server binary signs checkpoints by count and
// on demand (`coinledger audit checkpoint` through its admin API); a user
// saves the proof of liabilities of an account and the public keys, and
// `coinledger audit verify-proof` checks them offline; the exported
// checkpoints all verify with the keys; the key file has mode 0600.
func TestAuditProofEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s, c := adminServer(t, dir, "COINLEDGER_CHECKPOINT_EVERY=5")
	setUpWallet(t, c, "main", map[string]string{"alice": "1.00000000", "bob": "0.50000000"}, "alice", "bob")
	env := []string{"COINLEDGER_DATA_DIR=" + dir, "COINLEDGER_LISTEN=" + strings.TrimPrefix(s.URL, "http://"),
		"COINLEDGER_ADMIN_PASSWORD=" + adminPassword, "COINLEDGER_BCRYPT_COST=4", "COINLEDGER_TOKEN="}

	out := cli(t, "", env, "audit", "checkpoint")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	made, err := domain.ParseCheckpoint([]byte(lines[len(lines)-1]))
	if err != nil || made.Number < 2 {
		t.Fatalf("audit checkpoint said %q (%v); want one after those made by count", out, err)
	}

	proof := c.expect(http.StatusOK, "GET", "/wallets/main/accounts/alice/liability-proof", nil)
	proofFile, keysFile := filepath.Join(dir, "proof.json"), filepath.Join(dir, "keys.json")
	if err := os.WriteFile(proofFile, proof.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	keys := c.expect(http.StatusOK, "GET", "/audit/public-key", nil)
	if err := os.WriteFile(keysFile, keys.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	out = cli(t, "", env, "audit", "verify-proof", "-proof", proofFile, "-account", "main/alice", "-key", keysFile)
	if !strings.Contains(out, "ok: checkpoint") || !strings.Contains(out, "1.00000000 BTC of main/alice") ||
		!strings.Contains(out, "total 1.50000000 BTC") {
		t.Fatalf("verify-proof said:\n%s", out)
	}

	exported := filepath.Join(dir, "checkpoints.ndjson")
	cli(t, "", env, "audit", "checkpoints", "-o", exported)
	pubs, err := audit.ParsePublicKeys(keys.Body)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exported)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		cp, err := domain.ParseCheckpoint(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.Verify(audit.VerifyingKeys(pubs)); err != nil || cp.Number != uint64(n+1) {
			t.Fatalf("line %d: checkpoint %d: %v", n+1, cp.Number, err)
		}
	}
	if n < int(made.Number) {
		t.Fatalf("%d checkpoints exported, the server made %d", n, made.Number)
	}
	st, err := os.Stat(filepath.Join(dir, "audit-keys.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	s.Stop(t) // its log is all written once it has exited
	if log := s.Log(); strings.Contains(log, "private_key") || strings.Contains(log, "salt_secret") {
		t.Fatalf("the server logged key material:\n%s", log)
	}
}
