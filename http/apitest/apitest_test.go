package apitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/coinledger/coinledger/http/api"
)

// recorder is a testing.TB that collects Errorf calls instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

// fakeServer answers a few operations of the contract, correctly or not
// depending on the path or the X-Break header.
func fakeServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.Header.Get("X-Break") {
		case "":
			io.WriteString(w, `{"status":"ok"}`)
		case "type":
			io.WriteString(w, `{"status":5}`)
		case "extra":
			io.WriteString(w, `{"status":"ok","uptime":3}`)
		case "status":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, `{"status":"ok"}`)
		}
	})
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Break") != "" {
			// Echo's default error body instead of a problem document.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"message":"Unauthorized"}`)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthorized","detail":"wrong username or password"}`)
	})
	mux.HandleFunc("POST /api/v1/wallets/{wallet}/transfers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		if r.Header.Get("X-Break") != "" {
			w.Header().Set("Idempotent-Replayed", "perhaps")
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"t1","position":7}`)
	})
	mux.HandleFunc("GET /api/v1/wallets/{wallet}/accounts/{account}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		amount := "0.00150000"
		if r.Header.Get("X-Break") != "" {
			amount = "1.5e-3"
		}
		fmt.Fprintf(w, `{"wallet":%q,"name":%q,"position":3,"balance":{"available":%q,"pending":"0","held":"0","total":%q}}`,
			r.PathValue("wallet"), r.PathValue("account"), amount, amount)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestClientFlagsNonConformingResponses(t *testing.T) {
	srv := fakeServer(t)
	rec := &recorder{TB: t}
	c := NewClient(rec, srv.URL)
	broken := func(how string) http.Header { return Header("X-Break", how) }

	for _, tc := range []struct {
		name    string
		do      func() *Response
		status  int
		wantErr string // "" for a conforming exchange
	}{
		{"conforming", func() *Response { return c.Get("/healthz") }, 200, ""},
		{"wrong type", func() *Response { return c.Get("/healthz", broken("type")) }, 200, "GET /healthz → 200: response does not conform"},
		{"extra property", func() *Response { return c.Get("/healthz", broken("extra")) }, 200, "uptime"},
		{"undocumented status", func() *Response { return c.Get("/healthz", broken("status")) }, 418, "GET /healthz → 418"},
		{"problem document", func() *Response {
			return c.Post("/api/v1/auth/login", map[string]string{"username": "a", "password": "b"})
		}, 401, ""},
		{"error without problem+json", func() *Response {
			return c.Post("/api/v1/auth/login", map[string]string{"username": "a", "password": "b"}, broken("ct"))
		}, 401, "POST /api/v1/auth/login → 401: response does not conform"},
		{"replay header", func() *Response {
			return c.Post("/api/v1/wallets/btc/transfers", map[string]string{"from": "a", "to": "b", "amount": "0.1"}, Header("Idempotency-Key", "k1"))
		}, 201, ""},
		{"bad replay header", func() *Response {
			return c.Post("/api/v1/wallets/btc/transfers", map[string]string{"from": "a", "to": "b", "amount": "0.1"},
				Header("Idempotency-Key", "k1", "X-Break", "1"))
		}, 201, "Idempotent-Replayed"},
		{"exact amounts", func() *Response { return c.Get("/api/v1/wallets/btc/accounts/alice") }, 200, ""},
		{"amount not exact decimal", func() *Response { return c.Get("/api/v1/wallets/btc/accounts/alice", broken("1")) }, 200, "/balance/available"},
		{"missing idempotency key", func() *Response {
			return c.Post("/api/v1/wallets/btc/transfers", map[string]string{"from": "a", "to": "b", "amount": "0.1"})
		}, 201, "POST /api/v1/wallets/btc/transfers: request does not conform"},
		{"unknown request field", func() *Response {
			return c.Post("/api/v1/auth/login", map[string]string{"username": "a", "password": "b", "otp": "1"})
		}, 401, "request does not conform"},
		{"number amount", func() *Response {
			return c.Post("/api/v1/wallets/btc/transfers", map[string]any{"from": "a", "to": "b", "amount": 0.1}, Header("Idempotency-Key", "k2"))
		}, 201, "/amount"},
		{"path not in the contract", func() *Response { return c.Get("/api/v1/nope") }, 404, "no operation for GET /api/v1/nope"},
		{"DoInvalid with an invalid request", func() *Response {
			return c.DoInvalid(http.MethodPost, "/api/v1/auth/login", `{"username":`)
		}, 401, ""},
		{"DoInvalid with a valid request", func() *Response {
			return c.DoInvalid(http.MethodPost, "/api/v1/auth/login", map[string]string{"username": "a", "password": "b"})
		}, 401, "DoInvalid, but the request conforms"},
		{"DoInvalid still checks the response", func() *Response {
			return c.DoInvalid(http.MethodPost, "/api/v1/auth/login", `{}`, broken("ct"))
		}, 401, "response does not conform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			errs := rec.take()
			if r.Status != tc.status {
				t.Errorf("status %d, want %d", r.Status, tc.status)
			}
			switch {
			case tc.wantErr == "" && len(errs) > 0:
				t.Errorf("conforming exchange flagged:\n%s", strings.Join(errs, "\n"))
			case tc.wantErr != "" && len(errs) != 1:
				t.Errorf("want one error containing %q, got %d:\n%s", tc.wantErr, len(errs), strings.Join(errs, "\n"))
			case tc.wantErr != "" && !strings.Contains(errs[0], tc.wantErr):
				t.Errorf("error does not contain %q:\n%s", tc.wantErr, errs[0])
			}
		})
	}
}

func TestClientWithBasePath(t *testing.T) {
	srv := fakeServer(t)
	rec := &recorder{TB: t}
	c := NewClient(rec, srv.URL+"/api/v1/")
	c.Get("/wallets/btc/accounts/alice").Expect(rec, http.StatusOK)
	c.Get("/wallets/btc/accounts/alice", Header("X-Break", "1"))
	if errs := rec.take(); len(errs) != 1 || !strings.Contains(errs[0], "GET /wallets/btc/accounts/alice → 200: response does not conform") {
		t.Errorf("want one error for the broken answer, got:\n%s", strings.Join(errs, "\n"))
	}
}

func TestResponseHelpers(t *testing.T) {
	srv := fakeServer(t)
	c := NewClient(t, srv.URL)
	r := c.Post("/api/v1/auth/login", map[string]string{"username": "a", "password": "b"})
	p := r.ExpectProblem(t, http.StatusUnauthorized, "unauthorized")
	if p.Status != 401 || p.Detail == "" {
		t.Errorf("problem %+v", p)
	}
	var acc struct {
		Name    string
		Balance struct{ Available string }
	}
	if c.Get("/api/v1/wallets/btc/accounts/alice").Expect(t, http.StatusOK).JSON(t, &acc); acc.Name != "alice" || acc.Balance.Available != "0.00150000" {
		t.Errorf("account %+v", acc)
	}

	rec := &recorder{TB: t}
	c.Get("/healthz").Expect(rec, http.StatusCreated)
	c.Get("/healthz").Problem(rec)
	if errs := rec.take(); len(errs) != 2 {
		t.Errorf("Expect and Problem on a 200 JSON answer: %d errors, want 2: %v", len(errs), errs)
	}
}

// TestClientConcurrent fires parallel requests through one client; run with
// -race.
func TestClientConcurrent(t *testing.T) {
	srv := fakeServer(t)
	rec := &recorder{TB: t}
	c := NewClient(rec, srv.URL).WithToken("t")
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			cc := c.WithHeader("X-Request-Id", fmt.Sprint(i))
			switch i % 3 {
			case 0:
				cc.Get("/healthz").Expect(rec, http.StatusOK)
			case 1:
				cc.Post("/api/v1/wallets/btc/transfers", map[string]string{"from": "a", "to": "b", "amount": "1"},
					Header("Idempotency-Key", fmt.Sprint("k", i))).Expect(rec, http.StatusCreated)
			default:
				cc.Get("/healthz", Header("X-Break", "type"))
			}
		})
	}
	wg.Wait()
	errs := rec.take()
	if len(errs) != 100 {
		t.Fatalf("%d errors, want 100 (one per broken response):\n%s", len(errs), strings.Join(errs, "\n"))
	}
	for _, e := range errs {
		if !strings.Contains(e, "GET /healthz → 200: response does not conform") {
			t.Errorf("unexpected error: %s", e)
		}
	}
}

// TestDocsConform serves the real docs handlers and checks them against the
// contract.
func TestDocsConform(t *testing.T) {
	e := echo.New()
	api.RegisterDocs(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	c := NewClient(t, srv.URL)
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if c.Get("/api/openapi.json").Expect(t, http.StatusOK).JSON(t, &doc); doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	if r := c.Get("/docs").Expect(t, http.StatusOK); !strings.Contains(string(r.Body), "<script>") {
		t.Error("/docs has no renderer")
	}
	if string(Spec()) != string(api.OpenAPI()) {
		t.Error("Spec differs from api.OpenAPI")
	}
}
