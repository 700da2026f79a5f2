package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/getkin/kin-openapi/openapi3"
)

// failedStore is a store that reports it has failed, as the SQLite store
// does after an I/O error on commit (eventstore/sqlite's
// TestFailedFsyncStopsTheStore makes one fail for real).
type failedStore struct{ eventstore.Store }

func (failedStore) Failed() error {
	return fmt.Errorf("events.db: commit: disk I/O error: %w", eventstore.ErrStoreFailed)
}

// TestHealthReportsFailedStore checks that a fail-stopped event store makes
// the service unready (/readyz 503) and shows in /api/v1/status, in the
// documented shape.
func TestHealthReportsFailedStore(t *testing.T) {
	store := sqlitetest.Open(t)
	runner := projections.NewRunner(dbtest.OpenSQLite(t), store, projections.Options{})
	schema := loadSpec(t).Components.Schemas["StatusResponse"].Value
	tests := []struct {
		name   string
		store  eventstore.Store
		ready  int
		failed bool
	}{
		{"healthy", store, http.StatusOK, false},
		{"failed", failedStore{store}, http.StatusServiceUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Deps{Store: tc.store, Runner: runner, Logger: slog.New(slog.DiscardHandler), Version: "test"}
			a := New(d)
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.ready {
				t.Errorf("/readyz: %d %s, want %d", rec.Code, rec.Body, tc.ready)
			}
			if tc.failed && !strings.Contains(rec.Body.String(), "event store failed") {
				t.Errorf("/readyz body %s does not say the store failed", rec.Body)
			}

			// The status handler sits behind authentication: call it directly.
			rec = httptest.NewRecorder()
			c := a.NewContext(httptest.NewRequest(http.MethodGet, "/api/v1/status", nil), rec)
			if err := (&handlers{d: d}).status(c); err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if err := schema.VisitJSON(body, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("status does not match StatusResponse: %v", err)
			}
			if st, _ := body["store"].(map[string]any); st["failed"] != tc.failed {
				t.Errorf("status store = %v, want failed %v", st, tc.failed)
			}
		})
	}
}
