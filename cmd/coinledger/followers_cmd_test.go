package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/term"
)

// fakeAPI answers the admin endpoints the followers and projections
// commands call, as the contract has them: status with read models and
// followers, follower retry and skip (202, 404 unknown, 409 not parked or
// not skippable), the projections list, rebuilds as jobs that run over a
// few polls, and an export body. Every call but the login must carry the
// token the login gave.
type fakeAPI struct {
	t      *testing.T
	srv    *httptest.Server
	export []byte

	mu       sync.Mutex
	rebuilds []string          // projections asked to rebuild, in order
	polls    map[string]int    // job id → reads so far
	acted    []string          // "retry outbox", ...
	failJob  map[string]bool   // projections whose rebuild fails
	headers  map[string]int    // Authorization values seen
	jobNames map[string]string // job id → projection
}

const fakeToken = "fake-token"

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, polls: map[string]int{}, failJob: map[string]bool{}, headers: map[string]int{},
		jobNames: map[string]string{}}
	mux := http.NewServeMux()
	problem := func(w http.ResponseWriter, status int, code string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "detail": "fake " + code})
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&in)
		if in.Username != "admin" || in.Password != benchAdminPassword {
			problem(w, http.StatusUnauthorized, "invalid_credentials")
			return
		}
		reply(w, http.StatusOK, map[string]string{"access_token": fakeToken})
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.headers[r.Header.Get("Authorization")]++
			f.mu.Unlock()
			if r.Header.Get("Authorization") != "Bearer "+fakeToken {
				problem(w, http.StatusUnauthorized, "invalid_token")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/v1/status", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"store": map[string]any{"head": 120}, "projections": []map[string]any{
			{"name": "wallet", "kind": "read_model", "position": 120, "lag": 0, "running": true, "state": "running"},
			{"name": "outbox", "kind": "follower", "skippable": true, "position": 40, "lag": 80, "running": true,
				"state": "parked", "parked_at": 41, "error": "smtp: connection refused"},
			{"name": "apikeys", "kind": "follower", "position": 120, "lag": 0, "running": true, "state": "running"},
			{"name": "mailer", "kind": "follower", "skippable": true, "position": 120, "lag": 0, "running": true, "state": "running"},
		}})
	}))
	mux.HandleFunc("POST /api/v1/followers/{name}/{action}", authed(func(w http.ResponseWriter, r *http.Request) {
		name, action := r.PathValue("name"), r.PathValue("action")
		f.mu.Lock()
		f.acted = append(f.acted, action+" "+name)
		f.mu.Unlock()
		switch {
		case name != "outbox" && name != "apikeys" && name != "mailer":
			problem(w, http.StatusNotFound, "not_found")
		case name == "apikeys" && action == "skip":
			problem(w, http.StatusConflict, "follower_not_skippable")
		case name != "outbox":
			problem(w, http.StatusConflict, "projection_not_parked")
		case action == "skip":
			reply(w, http.StatusAccepted, map[string]uint64{"skipped_position": 41})
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	mux.HandleFunc("GET /api/v1/projections", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"projections": []map[string]any{
			{"name": "wallet", "version": 3, "state": "running", "position": 120, "lag": 0},
			{"name": "custody", "version": 1, "state": "running", "position": 118, "lag": 2},
			{"name": "users", "version": 2, "state": "running", "position": 120, "lag": 0, "rebuild_job": "job-users"},
		}})
	}))
	mux.HandleFunc("POST /api/v1/projections/{name}/rebuild", authed(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "users" { // a rebuild is in progress
			f.mu.Lock()
			f.rebuilds = append(f.rebuilds, name)
			f.jobNames["job-users"] = name
			f.mu.Unlock()
			problem(w, http.StatusConflict, "projection_rebuilding")
			return
		}
		if name != "wallet" && name != "custody" {
			problem(w, http.StatusNotFound, "not_found")
			return
		}
		f.mu.Lock()
		f.rebuilds = append(f.rebuilds, name)
		id := "job-" + name
		f.jobNames[id] = name
		f.mu.Unlock()
		w.Header().Set("Location", "/api/v1/projections/jobs/"+id)
		reply(w, http.StatusAccepted, f.job(id, 0))
	}))
	mux.HandleFunc("GET /api/v1/projections/jobs/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		_, ok := f.jobNames[id]
		f.polls[id]++
		n := f.polls[id]
		f.mu.Unlock()
		if !ok {
			problem(w, http.StatusNotFound, "not_found")
			return
		}
		reply(w, http.StatusOK, f.job(id, n))
	}))
	mux.HandleFunc("GET /api/v1/events/export", authed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write(f.export)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// job is the rebuild job id after n polls: running for two polls, then
// done (or failed, for a projection in failJob).
func (f *fakeAPI) job(id string, n int) map[string]any {
	f.mu.Lock()
	name := f.jobNames[id]
	fail := f.failJob[name]
	f.mu.Unlock()
	started := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	j := map[string]any{"id": id, "projection": name, "state": "running", "position": 50 * n, "head": 120,
		"events": 50 * n, "events_per_second": 1000, "started_at": started, "finished_at": nil, "error": ""}
	if n >= 3 {
		j["finished_at"] = started.Add(1500 * time.Millisecond)
		j["position"], j["events"] = 120, 120
		j["state"] = "done"
		if fail {
			j["state"], j["error"], j["position"] = "failed", "disk full", 100
		}
	}
	return j
}

// remote is a client of f, logged in with the admin password.
func (f *fakeAPI) remote() *remote {
	return addRemoteFlags(flag.NewFlagSet("test", flag.ContinueOnError)).client(strings.TrimPrefix(f.srv.URL, "http://"), benchAdminPassword)
}

// env points the CLI at f, logging in as admin.
func (f *fakeAPI) env(t *testing.T) {
	t.Setenv("COINLEDGER_LISTEN", strings.TrimPrefix(f.srv.URL, "http://"))
	t.Setenv("COINLEDGER_TOKEN", "")
	t.Setenv("COINLEDGER_ADMIN_PASSWORD", benchAdminPassword)
}

// TestFollowersCommandsCallServer: followers list shows the followers of
// /api/v1/status (kind follower, not the read models) with whether each may
// skip and a parked one's position and error; retry and skip post to
// /followers/{name}/retry|skip (skip names the skipped position) and
// explain a 404 (unknown) and each 409 (not parked, not skippable); a
// missing name is a usage error.
func TestFollowersCommandsCallServer(t *testing.T) {
	ctx := context.Background()
	f := newFakeAPI(t)
	f.env(t)
	out, err := runCLI(ctx, t, "", "followers", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^outbox +parked +40 +80 +yes +41 +smtp: connection refused$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^apikeys +running +120 +0 +no +- *$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^mailer +running +120 +0 +yes +- *$`).MatchString(out) || strings.Contains(out, "wallet") {
		t.Errorf("followers list:\n%s", out)
	}
	tests := []struct {
		args []string
		want string // in the output, or in the error
		ok   bool
	}{
		{[]string{"retry", "outbox"}, "follower outbox: retry requested", true},
		{[]string{"skip", "outbox"}, "follower outbox: the event at position 41 is skipped", true},
		{[]string{"retry", "apikeys"}, "apikeys is not parked: 409 Conflict: projection_not_parked", false},
		{[]string{"skip", "apikeys"}, "apikeys is not a side-effecting follower", false},
		{[]string{"skip", "mailer"}, "mailer is not parked", false},
		{[]string{"retry", "nope"}, `the server has no follower "nope"`, false},
		{[]string{"skip", "-url", f.srv.URL, "-token", "wrong", "outbox"}, "401 Unauthorized: invalid_token", false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runCLI(ctx, t, "", append([]string{"followers"}, tc.args...)...)
			got := out
			if err != nil {
				got = err.Error()
			}
			if (err == nil) != tc.ok || !strings.Contains(got, tc.want) {
				t.Errorf("got %q (err %v), want %q", got, err, tc.want)
			}
		})
	}
	f.mu.Lock()
	acted := strings.Join(f.acted, ",")
	f.mu.Unlock()
	if acted != "retry outbox,skip outbox,retry apikeys,skip apikeys,skip mailer,retry nope" {
		t.Errorf("the server got %s", acted)
	}
	var ue usageError
	for _, args := range [][]string{{"followers", "retry"}, {"followers", "skip", "a", "b"}, {"followers"}, {"followers", "frob"}} {
		if _, err := runCLI(ctx, t, "", args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestProjectionsListAndRebuildCallServer: projections list prints GET
// /api/v1/projections; rebuild NAME posts the rebuild and polls its job to
// the end; rebuild -all rebuilds every listed projection in turn and stops
// at a failed job with its error; a rebuild already in progress is joined;
// bad arguments are usage errors.
func TestProjectionsListAndRebuildCallServer(t *testing.T) {
	ctx := context.Background()
	old := jobPollEvery
	jobPollEvery = 5 * time.Millisecond
	defer func() { jobPollEvery = old }()
	f := newFakeAPI(t)
	f.env(t)
	out, err := runCLI(ctx, t, "", "projections", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^PROJECTION +VERSION +STATE +POSITION +LAG\nwallet +3 +running +120 +0\ncustody +1 +running +118 +2\nusers +2 +running +120 +0\n$`).MatchString(out) {
		t.Errorf("projections list:\n%s", out)
	}

	out, err = runCLI(ctx, t, "", "projections", "rebuild", "wallet")
	if err != nil || out != "projection wallet rebuilt up to position 120 in 1.5s (1000 events/s)\n" {
		t.Fatalf("rebuild wallet: %q %v", out, err)
	}
	f.mu.Lock()
	polls := f.polls["job-wallet"]
	f.failJob["custody"] = true
	f.polls = map[string]int{}
	f.mu.Unlock()
	if polls != 3 {
		t.Errorf("the job was read %d times, want 3 (until done)", polls)
	}

	out, err = runCLI(ctx, t, "", "projections", "rebuild", "--all")
	if err == nil || !strings.Contains(err.Error(), "projections rebuild custody: job job-custody failed at position 100: disk full") ||
		!strings.HasPrefix(out, "projection wallet rebuilt") {
		t.Fatalf("rebuild --all: %q %v", out, err)
	}
	f.mu.Lock()
	rebuilds := strings.Join(f.rebuilds, ",")
	f.mu.Unlock()
	if rebuilds != "wallet,wallet,custody" {
		t.Errorf("rebuilds asked: %s", rebuilds)
	}
	// A rebuild already in progress (409 projection_rebuilding) is joined:
	// its job, from the list, is followed to its end.
	out, err = runCLI(ctx, t, "", "projections", "rebuild", "users")
	if err != nil || out != "projection users rebuilt up to position 120 in 1.5s (1000 events/s)\n" {
		t.Fatalf("rebuild of a projection being rebuilt: %q %v", out, err)
	}
	if _, err := runCLI(ctx, t, "", "projections", "rebuild", "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("rebuild of an unknown projection: %v", err)
	}
	var ue usageError
	for _, args := range [][]string{{"projections", "rebuild"}, {"projections", "rebuild", "-all", "wallet"},
		{"projections", "list", "extra"}, {"projections", "rebuild", "-bogus"}, {"projections", "frob"}} {
		if _, err := runCLI(ctx, t, "", args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for h := range f.headers {
		if h != "Bearer "+fakeToken {
			t.Errorf("a call carried Authorization %q", h)
		}
	}
}

// TestNewCommandsHelp: -h and --help on the new commands print their usage
// and flags on standard output and succeed.
func TestNewCommandsHelp(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"followers", "list", "-h"}, {"followers", "retry", "--help"}, {"followers", "skip", "-h"},
		{"followers", "help"}, {"projections", "list", "-h"}, {"projections", "rebuild", "--all", "--help"},
		{"projections", "status", "-h"}, {"projections", "--help"}, {"audit", "verify", "-h"}, {"events", "export", "-h"},
		{"users", "grant", "-h"}} {
		out, err := runCLI(ctx, t, "", args...)
		if err != nil || !strings.Contains(out, "usage: coinledger "+args[0]) {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		if len(args) > 2 && !strings.Contains(out, "-url") {
			t.Errorf("%v: the flags are not listed:\n%s", args, out)
		}
	}
	if out, err := runCLI(ctx, t, "", "help"); err != nil || !strings.Contains(out, "followers skip NAME") ||
		!strings.Contains(out, "projections rebuild NAME") {
		t.Errorf("help: %v\n%s", err, out)
	}
}

// TestProgressLines: away from a terminal, progress is a plain line every
// period with events, position, rate, percent and time left; on a
// terminal, one line redrawn in place with a bar, cleared at the end.
func TestProgressLines(t *testing.T) {
	sample := func() progressSample {
		return progressSample{Events: 500, Position: 500, Fraction: 0.25}
	}
	if o := stderrProgress(); !term.IsTerminal(int(os.Stderr.Fd())) && (o.tty || o.every != 5*time.Second) {
		t.Errorf("progress on a non-terminal stderr: tty %v, every %s", o.tty, o.every)
	}
	plain := &lockedBuffer{}
	stop := progressOut{w: plain, every: 10 * time.Millisecond}.start("exported", sample)
	plain.waitFor(t, func(s string) bool { return strings.Count(s, "\n") >= 2 })
	stop()
	stop() // twice is fine
	lines := strings.Split(strings.TrimSuffix(plain.String(), "\n"), "\n")
	re := regexp.MustCompile(`^exported 500 events \(position 500\), \d+ events/s, 25%, \d+m?\d*s left$`)
	for _, l := range lines {
		if !re.MatchString(l) || strings.Contains(l, "\r") {
			t.Errorf("plain line %q", l)
		}
	}

	tty := &lockedBuffer{}
	stop = progressOut{w: tty, tty: true, width: 80, every: 10 * time.Millisecond}.start("rebuild wallet", sample)
	tty.waitFor(t, func(s string) bool { return strings.Count(s, "\r\033[K") >= 2 })
	stop()
	s := tty.String()
	if strings.Count(s, "\n") != 0 || !strings.HasPrefix(s, "\r\033[Krebuild wallet [") || !strings.HasSuffix(s, "\r\033[K") {
		t.Errorf("terminal output %q", s)
	}

	el := 10 * time.Second
	tests := []struct {
		name string
		out  progressOut
		s    progressSample
		want string
	}{
		{"plain, known share", progressOut{}, progressSample{Events: 500, Position: 700, Fraction: 0.25},
			"imported 500 events (position 700), 50 events/s, 25%, 30s left"},
		{"plain, unknown share, the job's rate", progressOut{}, progressSample{Events: 500, Rate: 1234},
			"imported 500 events, 1234 events/s"},
		{"bar", progressOut{tty: true, width: 80}, progressSample{Events: 500, Fraction: 0.5},
			"imported [===============>              ]  50% 500 events, 50 events/s, ETA 10s"},
		{"no bar without a share", progressOut{tty: true, width: 80}, progressSample{Events: 500, Position: 9},
			"imported 500 events, 50 events/s (position 9)"},
		{"narrow terminal", progressOut{tty: true, width: 40}, progressSample{Events: 500, Fraction: 0.5},
			"imported  50% 500 events, 50 events/s, "},
	}
	for _, tc := range tests {
		if got := tc.out.line("imported", tc.s, el); got != tc.want {
			t.Errorf("%s:\n got  %q\n want %q", tc.name, got, tc.want)
		}
		if tc.out.tty && len(tc.out.line("imported", tc.s, el)) > tc.out.width-1 {
			t.Errorf("%s: longer than the terminal", tc.name)
		}
	}
}

// TestFollowersCommandsAgainstServer: against the real service, followers
// list shows every follower it registered (and no read model); skip of a
// follower that is not parked and retry of an unknown name are refused
// with the server's reason.
func TestFollowersCommandsAgainstServer(t *testing.T) {
	ctx := context.Background()
	s := startServed(ctx, t, t.TempDir())
	if len(s.svc.followers) == 0 {
		t.Fatal("the service registers no follower")
	}
	out, err := runCLI(ctx, t, "", "followers", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.svc.followers {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f.Name()) + ` +`).MatchString(out) {
			t.Errorf("followers list has no %s:\n%s", f.Name(), out)
		}
	}
	for _, p := range readModels() {
		if regexp.MustCompile(`(?m)^` + p.Name() + ` `).MatchString(out) {
			t.Errorf("followers list shows read model %s:\n%s", p.Name(), out)
		}
	}
	name := s.svc.followers[0].Name()
	if _, err := runCLI(ctx, t, "", "followers", "retry", name); err == nil || !strings.Contains(err.Error(), name+" is not parked") {
		t.Errorf("retry of a running follower: %v", err)
	}
	if _, err := runCLI(ctx, t, "", "followers", "skip", "nope"); err == nil || !strings.Contains(err.Error(), `no follower "nope"`) {
		t.Errorf("skip of an unknown follower: %v", err)
	}
}

// lockedBuffer is a buffer one goroutine writes while another reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until ok holds for what was written, up to ten seconds.
func (l *lockedBuffer) waitFor(t *testing.T, ok func(string) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(l.String()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not written within 10s: %q", l.String())
		}
	}
}

// TestProjectionsRebuildAgainstServer: against the real service, projections
// list shows every read model, and rebuild wallet followed to its job's end
// leaves the wallet read model serving the same balance.
func TestProjectionsRebuildAgainstServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startServed(ctx, t, t.TempDir())
	if err := s.c.setUp(2); err != nil {
		t.Fatal(err)
	}
	s.caughtUp(ctx, t)
	balance := func() string {
		t.Helper()
		status, b, err := s.c.get("/wallets/bench/accounts/src1")
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET account: %d %s %v", status, b, err)
		}
		var a struct{ Balance json.RawMessage }
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		return string(a.Balance)
	}
	before := balance()
	out, err := runCLI(ctx, t, "", "projections", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range readModels() {
		if !regexp.MustCompile(`(?m)^` + p.Name() + ` +\d+ +\w+ +\d+ +\d+$`).MatchString(out) {
			t.Errorf("projections list has no %s:\n%s", p.Name(), out)
		}
	}
	out, err = runCLI(ctx, t, "", "projections", "rebuild", "wallet")
	if err != nil || !regexp.MustCompile(`^projection wallet rebuilt up to position \d+ in `).MatchString(out) {
		t.Fatalf("rebuild wallet: %q %v", out, err)
	}
	if after := balance(); after != before || !strings.Contains(after, "available") {
		t.Errorf("balance after the rebuild %s, before %s", after, before)
	}
}
