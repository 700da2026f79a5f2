package test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerifyEndToEnd: against the server binary while it runs (no
// lock error), `coinledger audit verify` reads the log through its API and
// matches the checkpoints the server signed with the keys it publishes
// and the checkpoints exported out of band; the log's export verifies
// offline with the same keys.
func TestAuditVerifyEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s, c := adminServer(t, dir, "COINLEDGER_CHECKPOINT_EVERY=5")
	setUpWallet(t, c, "main", map[string]string{"alice": "1.00000000", "bob": "0.50000000"}, "alice", "bob")
	env := []string{"COINLEDGER_DATA_DIR=" + dir, "COINLEDGER_LISTEN=" + strings.TrimPrefix(s.URL, "http://"),
		"COINLEDGER_ADMIN_PASSWORD=" + adminPassword, "COINLEDGER_BCRYPT_COST=4", "COINLEDGER_TOKEN="}
	cli(t, "", env, "audit", "checkpoint")
	keysFile, cpFile, export := filepath.Join(dir, "keys.json"), filepath.Join(dir, "checkpoints.ndjson"), filepath.Join(dir, "events.ndjson.gz")
	keys := c.expect(http.StatusOK, "GET", "/audit/public-key", nil)
	if err := os.WriteFile(keysFile, keys.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	cli(t, "", env, "audit", "checkpoints", "-o", cpFile)
	cli(t, "", env, "events", "export", "-o", export)

	out := cli(t, "", env, "audit", "verify", "-key", keysFile, "-checkpoints", cpFile)
	if !strings.Contains(out, "going through the server") || !strings.Contains(out, "ok: ") || strings.Contains(out, "NOT checked") ||
		strings.Contains(out, " 0 checkpoints matched") {
		t.Fatalf("audit verify against the server said:\n%s", out)
	}
	out = cli(t, "", nil, "audit", "verify", "-file", export, "-key", keysFile, "-checkpoints", cpFile)
	if !strings.Contains(out, "ok: ") || strings.Contains(out, " 0 checkpoints matched") {
		t.Fatalf("audit verify of the export said:\n%s", out)
	}
}
