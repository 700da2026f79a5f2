package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/webhook"
)

// received is one request as a test receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver starts a server that records every request on the returned
// channel and answers with status and answer.
func receiver(t *testing.T, status int, answer string) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), b}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func request(url string) webhook.Request {
	return webhook.Request{
		URL:        url,
		Secret:     secret,
		DeliveryID: "dlv_01",
		EventType:  "deposit.confirmed",
		Body:       body,
	}
}

func TestDeliverSigned(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusNoContent, "")
	s := webhook.New(srv.Client(), fixedClock(t0))

	res, err := s.Deliver(context.Background(), request(srv.URL+"/hooks?token=abc"))
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if res.Status != http.StatusNoContent {
		t.Errorf("Status = %d, want 204", res.Status)
	}
	r := <-got
	if err := webhook.Verify(secret, r.header, r.body, t0.Add(30*time.Second), time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if string(r.body) != string(body) {
		t.Errorf("body = %s, want %s", r.body, body)
	}
	for name, want := range map[string]string{
		"Content-Type":          "application/json",
		"User-Agent":            "coinledger-webhook/1",
		webhook.HeaderTimestamp: "1700000000",
		webhook.HeaderSignature: webhook.Sign(secret, t0, body),
		webhook.HeaderDelivery:  "dlv_01",
		webhook.HeaderEvent:     "deposit.confirmed",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	// A receiver that checks the signature rejects a changed body and a
	// replay long after.
	if err := webhook.Verify(secret, r.header, append(r.body, ' '), t0, time.Minute); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Errorf("Verify tampered body: %v, want ErrSignatureMismatch", err)
	}
	if err := webhook.Verify(secret, r.header, r.body, t0.Add(time.Hour), time.Minute); !errors.Is(err, webhook.ErrTimestampTolerance) {
		t.Errorf("Verify replay: %v, want ErrTimestampTolerance", err)
	}
}

func TestDeliverStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   error // nil: success
	}{
		{200, nil},
		{201, nil},
		{202, nil},
		{204, nil},
		{299, nil},
		{408, webhook.ErrTemporary},
		{429, webhook.ErrTemporary},
		{500, webhook.ErrTemporary},
		{502, webhook.ErrTemporary},
		{503, webhook.ErrTemporary},
		{400, webhook.ErrPermanent},
		{401, webhook.ErrPermanent},
		{403, webhook.ErrPermanent},
		{404, webhook.ErrPermanent},
		{410, webhook.ErrPermanent},
		{422, webhook.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			answer := "answer " + strconv.Itoa(tt.status)
			if tt.status == http.StatusNoContent {
				answer = "" // a 204 has no body
			}
			srv, got := receiver(t, tt.status, answer)
			res, err := webhook.New(srv.Client(), nil).Deliver(context.Background(), request(srv.URL))
			<-got
			if res.Status != tt.status {
				t.Errorf("Status = %d, want %d", res.Status, tt.status)
			}
			if res.Body != answer {
				t.Errorf("Body = %q, want %q", res.Body, answer)
			}
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("Deliver: %v, want success", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("Deliver: %v, want %v", err, tt.want)
			case tt.want == webhook.ErrTemporary && errors.Is(err, webhook.ErrPermanent),
				tt.want == webhook.ErrPermanent && errors.Is(err, webhook.ErrTemporary):
				t.Errorf("Deliver: %v is both temporary and permanent", err)
			}
		})
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target, got := receiver(t, http.StatusOK, "")
	redirector := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirector.Close)

	client := &http.Client{Timeout: 5 * time.Second}
	res, err := webhook.New(client, nil).Deliver(context.Background(), request(redirector.URL))
	if !errors.Is(err, webhook.ErrTemporary) {
		t.Errorf("Deliver: %v, want ErrTemporary", err)
	}
	if res.Status != http.StatusFound {
		t.Errorf("Status = %d, want 302", res.Status)
	}
	select {
	case <-got:
		t.Error("the redirect was followed")
	default:
	}
	if client.CheckRedirect != nil {
		t.Error("New changed the caller's client")
	}
}

// slowReceiver answers only when the request is abandoned or the test ends.
func slowReceiver(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

func TestDeliverClientTimeout(t *testing.T) {
	t.Parallel()
	srv := slowReceiver(t)
	s := webhook.New(&http.Client{Timeout: 100 * time.Millisecond}, nil)
	start := time.Now()
	res, err := s.Deliver(context.Background(), request(srv.URL))
	if !errors.Is(err, webhook.ErrTemporary) {
		t.Errorf("Deliver: %v, want ErrTemporary", err)
	}
	if res.Status != 0 {
		t.Errorf("Status = %d, want 0", res.Status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Deliver took %v", d)
	}
}

func TestDeliverContextDeadline(t *testing.T) {
	t.Parallel()
	srv := slowReceiver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := webhook.New(nil, nil).Deliver(ctx, request(srv.URL))
	if !errors.Is(err, webhook.ErrTemporary) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deliver: %v, want ErrTemporary and context.DeadlineExceeded", err)
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = webhook.New(nil, nil).Deliver(context.Background(), request("http://"+addr+"/hook?token=s3cr3t"))
	if !errors.Is(err, webhook.ErrTemporary) {
		t.Errorf("Deliver: %v, want ErrTemporary", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error shows the query: %v", err)
	}
}

func TestDeliverTruncatesResponseBody(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789", 1000)
	srv, _ := receiver(t, http.StatusInternalServerError, long)
	res, err := webhook.New(srv.Client(), nil).Deliver(context.Background(), request(srv.URL))
	if !errors.Is(err, webhook.ErrTemporary) {
		t.Errorf("Deliver: %v, want ErrTemporary", err)
	}
	if res.Body != long[:1024] {
		t.Errorf("Body has %d bytes, want the first 1024", len(res.Body))
	}
}

func TestDeliverInvalidRequest(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	tests := []struct {
		name string
		edit func(*webhook.Request)
	}{
		{"empty url", func(r *webhook.Request) { r.URL = "" }},
		{"unparsable url", func(r *webhook.Request) { r.URL = "http://[::1" }},
		{"ftp", func(r *webhook.Request) { r.URL = "ftp://example.com/hook" }},
		{"no scheme", func(r *webhook.Request) { r.URL = "example.com/hook" }},
		{"no host", func(r *webhook.Request) { r.URL = "http:///hook" }},
		{"user info", func(r *webhook.Request) { r.URL = strings.Replace(srv.URL, "://", "://alice:hunter2@", 1) }},
		{"no secret", func(r *webhook.Request) { r.Secret = nil }},
		{"no delivery id", func(r *webhook.Request) { r.DeliveryID = "" }},
		{"newline in event type", func(r *webhook.Request) { r.EventType = "a\r\nX-Evil: 1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := request(srv.URL)
			tt.edit(&r)
			_, err := webhook.New(srv.Client(), nil).Deliver(context.Background(), r)
			if !errors.Is(err, webhook.ErrPermanent) || !errors.Is(err, webhook.ErrInvalidRequest) {
				t.Fatalf("Deliver: %v, want ErrPermanent and ErrInvalidRequest", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("the receiver got %d requests", n)
		}
	})
}
