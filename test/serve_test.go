package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections/dbtest"
)

func testServeAnswersHealth(t *testing.T, env ...string) {
	s, c := adminServer(t, "", env...)
	if code, body := get(t, s.URL+"/healthz"); code != http.StatusOK || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, s.URL+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, s.URL+"/api/v1/status"); code != http.StatusUnauthorized {
		t.Fatalf("/api/v1/status without a token: %d, want 401", code)
	}
	body := string(c.expect(http.StatusOK, "GET", "/status", nil).Body)
	var st struct {
		Version     string
		Projections []struct {
			Name    string
			Running bool
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Version == "" || len(st.Projections) < 2 {
		t.Fatalf("/api/v1/status: %v %s", err, body)
	}
	if code, body := get(t, s.URL+"/api/openapi.json"); code != http.StatusOK || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Fatalf("/api/openapi.json: %d %.80s", code, body)
	}
	if code, body := get(t, s.URL+"/docs"); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("/docs: %d %.80s", code, body)
	}
	code, metrics := get(t, s.URL+"/metrics")
	for _, want := range []string{"coinledger_event_store_head ", `coinledger_projection_lag{projection="wallet"}`,
		`coinledger_http_requests_total{method="GET",route="/api/v1/status",status="200"} 1`, "coinledger_build_info"} {
		if code != http.StatusOK || !strings.Contains(metrics, want) {
			t.Fatalf("/metrics: %d, no %s in\n%.2000s", code, want, metrics)
		}
	}
	s.Stop(t)
	if !strings.Contains(s.Log(), "stopped") {
		t.Fatalf("no clean shutdown in log:\n%s", s.Log())
	}
}

// TestServeEmbedded runs the service as the README's first command does:
// no configuration, embedded stores in the data directory.
func TestServeEmbedded(t *testing.T) {
	testServeAnswersHealth(t)
}

// TestServePostgresReadModels runs the service with read models in Postgres.
func TestServePostgresReadModels(t *testing.T) {
	testServeAnswersHealth(t, "COINLEDGER_READ_MODELS="+dbtest.PostgresURL(t))
}

// TestGeneratedAdminPassword: without COINLEDGER_ADMIN_PASSWORD the first
// start writes a generated password to DATA_DIR/admin-password (mode 0600)
// and logs only that path, never the password (stdout is a persistent log
// under Docker and systemd); it works, and later starts leave it alone.
func TestGeneratedAdminPassword(t *testing.T) {
	dir := t.TempDir()
	s := StartServer(t, dir, "COINLEDGER_BCRYPT_COST=4")
	file := filepath.Join(dir, "admin-password")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no password file: %v\n%s", err, s.Log())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(b))
	if len(password) < 20 {
		t.Fatalf("password file holds %q", password)
	}
	if !strings.Contains(s.Log(), file) {
		t.Fatalf("the log does not say where the password is:\n%s", s.Log())
	}
	if strings.Contains(s.Log(), password) {
		t.Fatalf("the generated password appears in the log:\n%s", s.Log())
	}
	c := newClient(t, s)
	c.login("admin", password)
	s.Stop(t)
	if err := os.Remove(file); err != nil { // as the log tells the operator
		t.Fatal(err)
	}
	s2 := StartServer(t, dir, "COINLEDGER_BCRYPT_COST=4")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a second start wrote the password file again: %v", err)
	}
	newClient(t, s2).login("admin", password)
	s2.Stop(t) // its log is all written once it has exited
	if strings.Contains(s2.Log(), password) {
		t.Fatalf("the password appears in the second log")
	}
}
