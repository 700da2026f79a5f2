package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func testServeAnswersHealth(t *testing.T, env ...string) {
	s := StartServer(t, "", env...)
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
	code, body := get(t, s.URL+"/api/v1/status")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/status: %d %s", code, body)
	}
	var st struct {
		Version     string
		Projections []struct {
			Name    string
			Running bool
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Version == "" || len(st.Projections) == 0 {
		t.Fatalf("/api/v1/status: %v %s", err, body)
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
	testServeAnswersHealth(t, "COINLEDGER_READ_MODELS="+postgresURL(t))
}
