package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestParkedProjectionShowsAndRetries: a read model parked at a poison
// event makes /readyz answer 503 naming it and shows in /api/v1/status
// with its position and error and in /metrics, while the API answers; an admin's
// POST /api/v1/projections/{name}/retry (403 for others, 404 for an unknown
// name, 409 when not parked) resumes it once the fault is fixed.
func TestParkedProjectionShowsAndRetries(t *testing.T) {
	counter := &dbtest.Counter{}
	counter.Fail.Store(true)
	ts := newTestServerWith(t, nil, counter)
	ctx := context.Background()
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res := appendPoison(t, wait, ts, "counter")

	code, body := get(t, ts.URL+"/readyz")
	if want := "projection counter parked at " + strconv.FormatUint(res.Position, 10); code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
		t.Errorf("/readyz: %d %s, want 503 saying %q", code, body, want)
	}
	_, metrics := get(t, ts.URL+"/metrics")
	for _, want := range []string{`coinledger_projection_parked{projection="counter"} 1`, `coinledger_projection_parked{projection="wallet"} 0`,
		`coinledger_projection_state{projection="counter",state="parked"} 1`, `coinledger_projection_errors_total{projection="counter"} `} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	admin := ts.admin(t) // the API answers while a read model is parked
	var status struct {
		Projections []struct {
			Name     string `json:"name"`
			State    string `json:"state"`
			Error    string `json:"error"`
			ParkedAt uint64 `json:"parked_at"`
			Failures uint64 `json:"failures"`
		} `json:"projections"`
	}
	admin.Get("/status").Expect(t, http.StatusOK).JSON(t, &status)
	found := false
	for _, p := range status.Projections {
		switch p.Name {
		case "counter":
			found = true
			if p.State != "parked" || p.ParkedAt != res.Position || !strings.Contains(p.Error, dbtest.ErrPoison.Error()) || p.Failures == 0 {
				t.Errorf("status of counter: %+v, want parked at %d with the error", p, res.Position)
			}
		default:
			if p.State == "parked" || p.Error != "" {
				t.Errorf("status of %s: %+v, want not parked", p.Name, p)
			}
		}
	}
	if !found {
		t.Fatalf("status lists no counter: %+v", status)
	}

	ts.addUser(t, admin, "carol")
	carol := ts.client(t).WithToken(ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken)
	carol.Post("/projections/counter/retry", nil).ExpectProblem(t, http.StatusForbidden, "permission_denied")
	admin.Post("/projections/nope/retry", nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	admin.Post("/projections/wallet/retry", nil).ExpectProblem(t, http.StatusConflict, "projection_not_parked")

	counter.Fail.Store(false)
	admin.Post("/projections/counter/retry", nil).Expect(t, http.StatusAccepted)
	if err := ts.Runner.WaitFor(wait, "counter", res.Position); err != nil {
		t.Fatalf("after retry: %v", err)
	}
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after retry: %d %s, want 200", code, body)
	}
	admin.Post("/projections/counter/retry", nil).ExpectProblem(t, http.StatusConflict, "projection_not_parked")
	head, err := ts.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Runner.WaitFor(wait, "counter", head); err != nil {
		t.Fatal(err)
	}
	if n, lo, hi, err := dbtest.CounterRows(ctx, ts.DB); err != nil || n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("counter rows %d (%d..%d), %v; want %d (each event once)", n, lo, hi, err, head)
	}
}

// appendPoison appends a poison event and waits until projection name
// parks at it.
func appendPoison(t *testing.T, ctx context.Context, ts *testServer, name string) eventstore.AppendResult {
	t.Helper()
	res, err := ts.Store.Append(ctx, "test-poison", eventstore.Any, eventstore.EventData{Type: dbtest.PoisonType, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Runner.WaitFor(ctx, name, res.Position); !errors.Is(err, projections.ErrParked) {
		t.Fatalf("WaitFor: %v, want ErrParked", err)
	}
	return res
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestParkedFollowerSkips: a side-effect follower parked at a poison event
// shows in /api/v1/status as a skippable follower and keeps /readyz at 503
// while the API answers; an admin's POST /api/v1/followers/{name}/skip
// (403 for others, 409 for a read model or a follower that is not parked)
// records the skip and resumes it after the event.
func TestParkedFollowerSkips(t *testing.T) {
	worker := &dbtest.Worker{}
	worker.Fail.Store(true)
	ts := newTestServerWith(t, nil, projections.Follow(worker))
	ctx := context.Background()
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res := appendPoison(t, wait, ts, "sums")
	// Every other projection catches up with the poison (not ready before
	// that, whatever sums does).
	st, err := ts.Runner.Status(wait)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name != "sums" {
			if err := ts.Runner.WaitFor(wait, s.Name, res.Position); err != nil {
				t.Fatal(err)
			}
		}
	}
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "sums parked") {
		t.Errorf("/readyz: %d %s, want 503 naming the follower", code, body)
	}
	_, metrics := get(t, ts.URL+"/metrics")
	for _, want := range []string{`coinledger_projection_parked{projection="sums"} 1`,
		`coinledger_projection_ready{kind="follower",projection="sums"} 0`, `coinledger_projection_ready{kind="read_model",projection="wallet"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	admin := ts.admin(t)
	var status struct {
		Projections []struct {
			Name      string `json:"name"`
			Kind      string `json:"kind"`
			State     string `json:"state"`
			Skippable bool   `json:"skippable"`
		} `json:"projections"`
	}
	admin.Get("/status").Expect(t, http.StatusOK).JSON(t, &status)
	var kinds []string
	for _, p := range status.Projections {
		kinds = append(kinds, p.Name+":"+p.Kind+":"+p.State+":"+strconv.FormatBool(p.Skippable))
	}
	if !slices.Contains(kinds, "sums:follower:parked:true") || !slices.Contains(kinds, "wallet:read_model:running:false") {
		t.Errorf("status: %v, want the parked skippable follower beside the running read models", kinds)
	}

	ts.addUser(t, admin, "carol")
	carol := ts.client(t).WithToken(ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken)
	carol.Post("/followers/sums/skip", nil).ExpectProblem(t, http.StatusForbidden, "permission_denied")
	admin.Post("/followers/wallet/skip", nil).ExpectProblem(t, http.StatusConflict, "follower_not_skippable")
	admin.Post("/followers/nope/skip", nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	var skipped struct {
		Position uint64 `json:"skipped_position"`
	}
	admin.Post("/followers/sums/skip", nil).Expect(t, http.StatusAccepted).JSON(t, &skipped)
	if skipped.Position != res.Position {
		t.Errorf("skipped %d, want %d", skipped.Position, res.Position)
	}
	if err := ts.Runner.CaughtUp(wait, "sums"); err != nil {
		t.Fatalf("after skip: %v", err)
	}
	admin.Post("/followers/sums/skip", nil).ExpectProblem(t, http.StatusConflict, "projection_not_parked")
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after skip: %d %s, want 200", code, body)
	}
	recs, err := ts.Store.ReadStream(ctx, projections.SkipStreamPrefix+"sums", 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Metadata.Actor != "user:admin" {
		t.Errorf("skip records %v, %v: want one by user:admin", recs, err)
	}
}
