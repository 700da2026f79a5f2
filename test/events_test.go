package test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

type eventJSON struct {
	Position, Revision uint64
	Stream, Type, Hash string
}

// TestAuditorReadsTheLog: auditors (and admins) page through the global
// log with filters, read one stream, and follow the log as server-sent
// events, resuming after Last-Event-ID; nobody else may.
func TestAuditorReadsTheLog(t *testing.T) {
	w := newAuthWorld(t)
	w.admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "audrey", "email": "audrey@example.com",
		"password": "password-audrey", "roles": []string{"auditor"}})
	auditor := newClient(t, w.s)
	auditor.login("audrey", "password-audrey")
	w.reader.expect(http.StatusForbidden, "GET", "/events", nil)

	var page struct {
		Events []eventJSON
		Next   uint64
	}
	auditor.expect(http.StatusOK, "GET", "/events?from=1&limit=5", nil).JSON(t, &page)
	if len(page.Events) != 5 || page.Events[0].Position != 1 || page.Next != page.Events[4].Position+1 || len(page.Events[0].Hash) != 64 {
		t.Fatalf("first page: %+v", page)
	}
	auditor.expect(http.StatusOK, "GET", "/events?from="+strconv.FormatUint(page.Next, 10)+"&stream_prefix=wallet-w&type=ledger.funds_transferred", nil).JSON(t, &page)
	for _, e := range page.Events {
		if e.Stream != "wallet-w" || e.Type != "ledger.funds_transferred" {
			t.Fatalf("filtered page has %+v", e)
		}
	}
	var stream struct {
		Stream string
		Events []eventJSON
		Next   uint64
	}
	auditor.expect(http.StatusOK, "GET", "/streams/wallet-w?limit=3", nil).JSON(t, &stream)
	if stream.Stream != "wallet-w" || len(stream.Events) != 3 || stream.Events[2].Revision != 2 || stream.Next != 3 {
		t.Fatalf("stream page: %+v", stream)
	}
	auditor.expect(http.StatusNotFound, "GET", "/streams/no-such-stream", nil)

	// Follow the log from position 3, then resume after the 5th event.
	ids := sseIDs(t, w.s, auditor.token, "from=3", "", 4)
	if strings.Join(ids, ",") != "3,4,5,6" {
		t.Fatalf("SSE ids %v, want 3..6", ids)
	}
	if ids := sseIDs(t, w.s, auditor.token, "", "5", 2); strings.Join(ids, ",") != "6,7" {
		t.Fatalf("SSE after Last-Event-ID 5: %v", ids)
	}
}

// sseIDs reads the ids of the first n events of /events/stream.
func sseIDs(t *testing.T, s *Server, token, query, lastID string, n int) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("event stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var ids []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for len(ids) < n && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			ids = append(ids, id)
		}
	}
	return ids
}
