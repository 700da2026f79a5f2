package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/http/api"
)

// TestExportEventsIsTheCLIFormat: GET /api/v1/events/export (admin) streams
// the NDJSON export `coinledger events export` writes, line for line what
// dump.Export writes from the store (data as stored, sealed boxes sealed),
// whole or for a range; a whole one verifies as an import would. Other roles, the
// auditor included, get 403; a bad position 400.
func TestExportEventsIsTheCLIFormat(t *testing.T) {
	ts := newTestServer(t, func(d *api.Deps) { d.StoreKind = "sqlite" })
	ctx := context.Background()
	admin := ts.admin(t)
	admin.Post("/users", map[string]any{"username": "audrey", "email": "audrey@example.com",
		"password": "password-audrey", "roles": []string{"auditor"}}).Expect(t, http.StatusCreated)
	for i := range 5 {
		if _, err := ts.Store.Append(ctx, "test-export", eventstore.Any,
			eventstore.EventData{Type: "Noted", Data: []byte(`{"n":` + string(rune('0'+i)) + `,"memo":"ü \"q\""}`)}); err != nil {
			t.Fatal(err)
		}
	}
	head, err := ts.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		query    string
		from, to uint64
	}{
		{"", 0, 0},
		{"?from=2&to=4", 2, 4},
		{"?from=" + strconv.FormatUint(head, 10), head, 0},
	}
	for _, tc := range tests {
		t.Run("range"+tc.query, func(t *testing.T) {
			r := admin.Get("/events/export"+tc.query).Expect(t, http.StatusOK)
			if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q", ct)
			}
			var want bytes.Buffer
			wantEnd, err := dump.Export(ctx, ts.Store, &want, dump.ExportOptions{From: tc.from, To: tc.to, Source: "sqlite"})
			if err != nil {
				t.Fatal(err)
			}
			got, wantLines := strings.SplitN(string(r.Body), "\n", 2), strings.SplitN(want.String(), "\n", 2)
			if len(got) != 2 || got[1] != wantLines[1] {
				t.Fatalf("the export differs from dump.Export's after the header:\n got  %s\n want %s", r.Body, want.String())
			}
			if tc.from > 0 {
				return // a range's chains start before it: only a whole export verifies
			}
			_, end, err := dump.Import(ctx, nil, bytes.NewReader(r.Body), dump.ImportOptions{CheckOnly: true})
			if err != nil || end != wantEnd || end.Events == 0 {
				t.Fatalf("import -check of the answer: %+v %v, want %+v", end, err, wantEnd)
			}
		})
	}

	auditor := ts.client(t).WithToken(ts.login(t, "audrey", "password-audrey", "127.0.0.1").AccessToken)
	auditor.Get("/events/export").Expect(t, http.StatusForbidden)
	ts.client(t).Get("/events/export").Expect(t, http.StatusUnauthorized)
	admin.DoInvalid(http.MethodGet, "/events/export?from=-1", nil).Expect(t, http.StatusBadRequest)
}
