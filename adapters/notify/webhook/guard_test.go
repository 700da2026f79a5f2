package webhook_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/webhook"
	"github.com/coinledger/coinledger/domain/egress"
)

// TestGuardedClientRefusesForbiddenAddressAtDial: a host name that
// resolves to loopback ("localhost", as a rebinding name would at delivery
// time) is refused on the address actually dialled, and so is an IP
// literal; the receiver never sees a request. Allowlisting loopback lets
// the same delivery through.
func TestGuardedClientRefusesForbiddenAddressAtDial(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusNoContent, "")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	byName := "http://localhost:" + port + "/hook"

	strict := webhook.New(webhook.GuardedClient(egress.Policy{AllowHTTP: true}, 5*time.Second), nil)
	for _, url := range []string{byName, srv.URL + "/hook"} {
		res, err := strict.Deliver(context.Background(), request(url))
		if !errors.Is(err, egress.ErrForbidden) || !errors.Is(err, webhook.ErrPermanent) || errors.Is(err, webhook.ErrTemporary) {
			t.Errorf("Deliver(%s): %v, want ErrForbidden and only ErrPermanent", url, err)
		}
		if res.Status != 0 {
			t.Errorf("Deliver(%s): status %d, want no answer", url, res.Status)
		}
	}
	select {
	case <-got:
		t.Fatal("a forbidden target received a request")
	default:
	}

	allowed := webhook.New(webhook.GuardedClient(egress.Policy{AllowHTTP: true,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}, 5*time.Second), nil)
	if _, err := allowed.Deliver(context.Background(), request(byName)); err != nil {
		t.Fatalf("Deliver to an allowlisted receiver: %v", err)
	}
	<-got
}

// TestGuardedClientHTTPSOnly: without AllowHTTP a plain http URL is refused
// before any connection.
func TestGuardedClientHTTPSOnly(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusNoContent, "")
	p := egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	_, err := webhook.New(webhook.GuardedClient(p, 5*time.Second), nil).Deliver(context.Background(), request(srv.URL))
	if !errors.Is(err, egress.ErrForbidden) || !errors.Is(err, webhook.ErrPermanent) {
		t.Fatalf("Deliver over http: %v, want ErrForbidden, ErrPermanent", err)
	}
	select {
	case <-got:
		t.Fatal("the receiver got a request over http")
	default:
	}
}

// TestGuardedClientRedirectToForbiddenTarget: an allowlisted receiver that
// redirects to a forbidden address does not get the request sent there.
func TestGuardedClientRedirectToForbiddenTarget(t *testing.T) {
	t.Parallel()
	// The target listens on 127.0.0.2, which the allowlist (127.0.0.1
	// only) leaves forbidden.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	hit := make(chan struct{}, 10)
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- struct{}{} }))
	target.Listener.Close()
	target.Listener = ln
	target.Start()
	t.Cleanup(target.Close)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/internal", code))
		t.Cleanup(redirector.Close)

		p := egress.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		res, err := webhook.New(webhook.GuardedClient(p, 5*time.Second), nil).Deliver(context.Background(), request(redirector.URL))
		if err == nil || res.Status != code {
			t.Errorf("Deliver to a %d redirector: status %d, %v; want the %d reported as a failure", code, res.Status, err, code)
		}
	}
	select {
	case <-hit:
		t.Fatal("the redirect to a forbidden target was followed")
	default:
	}
}
