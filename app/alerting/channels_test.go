package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
)

// hosts is a resolver with a fixed table.
type hosts map[string][]string

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := h[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

var testHosts = hosts{
	"hooks.example.com": {"93.184.216.34", "2606:2800:220:1::248"},
	"internal.corp":     {"10.1.2.3"},
	"metadata.evil":     {"169.254.169.254"},
	"mixed.evil":        {"93.184.216.34", "127.0.0.1"}, // one bad address is enough
	"mapped.evil":       {"::ffff:192.168.0.10"},
	"ula.evil":          {"fd00::5"},
	"cgnat.evil":        {"100.64.1.1"},
}

func webhookAlert(owner, url string) alerts.Create {
	c := above(owner, "64000")
	c.Channels = alerts.Channels{Webhook: url}
	return c
}

// TestCreateRefusesForbiddenWebhookTargets: a webhook at a loopback,
// private, link-local (metadata), unspecified, multicast, CGNAT, ULA or
// IPv4-mapped address, as a literal or behind a name, with user info, with
// another scheme or over plain http is refused with egress.ErrForbidden,
// and nothing is written.
func TestCreateRefusesForbiddenWebhookTargets(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	svc := alerting.New(store, alerting.Config{Resolver: testHosts})
	for _, url := range []string{
		"https://127.0.0.1/hook",
		"https://127.1.2.3:8080/hook",
		"https://[::1]/hook",
		"https://[::ffff:127.0.0.1]/hook",
		"https://10.0.0.5/hook",
		"https://172.20.0.1/hook",
		"https://192.168.1.1/hook",
		"https://[fc00::1]/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://[::ffff:169.254.169.254]/",
		"https://[fe80::1]/hook",
		"https://0.0.0.0/hook",
		"https://[::]/hook",
		"https://224.0.0.1/hook",
		"https://[ff02::1]/hook",
		"https://100.64.0.1/hook",
		"https://255.255.255.255/hook",
		"https://internal.corp/hook",
		"https://metadata.evil/hook",
		"https://mixed.evil/hook",
		"https://mapped.evil/hook",
		"https://ula.evil/hook",
		"https://cgnat.evil/hook",
		"https://does-not-resolve.example/hook",
		"http://hooks.example.com/hook", // http not allowed by default
		"https://user:pw@hooks.example.com/hook",
		"ftp://hooks.example.com/hook",
	} {
		_, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, webhookAlert("alice", url))
		if !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("create with webhook %s: %v, want egress.ErrForbidden", url, err)
		}
	}
	if h, _ := store.Head(ctx); h != 0 {
		t.Fatalf("%d events written, want none", h)
	}
	for _, url := range []string{"https://hooks.example.com/hook", "https://93.184.216.34:8443/x", "https://[2606:4700::1]/"} {
		if _, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, webhookAlert("alice", url)); err != nil {
			t.Errorf("create with public webhook %s: %v", url, err)
		}
	}
}

// TestCreateWebhookAllowlist: an operator's allowlist and AllowHTTP let
// internal receivers through, and only those.
func TestCreateWebhookAllowlist(t *testing.T) {
	ctx := context.Background()
	allow, err := egress.ParseAllow([]string{"10.1.0.0/16", "127.0.0.0/8"})
	must(t, err)
	svc := alerting.New(sqlitetest.Open(t), alerting.Config{Resolver: testHosts,
		Webhooks: egress.Policy{AllowHTTP: true, Allow: allow}})
	for url, ok := range map[string]bool{
		"https://internal.corp/hook":    true,
		"http://internal.corp/hook":     true,
		"http://127.0.0.1:9000/hook":    true,
		"https://10.1.255.1/hook":       true,
		"https://10.2.0.1/hook":         false,
		"https://metadata.evil/":        false,
		"https://mapped.evil/":          false,
		"https://user@internal.corp/":   false,
		"https://hooks.example.com/x":   true,
		"gopher://internal.corp/x":      false,
		"http://[::ffff:10.1.0.9]/hook": true,
	} {
		_, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, webhookAlert("alice", url))
		if ok && err != nil || !ok && !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("create with webhook %s: %v, want allowed %v", url, err, ok)
		}
	}
}

// TestCreateWebhookLocalhostResolved: "localhost" is looked up by the real
// resolver and refused for the loopback address it resolves to.
func TestCreateWebhookLocalhostResolved(t *testing.T) {
	svc := alerting.New(sqlitetest.Open(t), alerting.Config{Webhooks: egress.Policy{AllowHTTP: true}})
	_, _, err := svc.Create(context.Background(), eventstore.Metadata{}, webhookAlert("alice", "http://localhost:8080/hook"))
	if !errors.Is(err, egress.ErrForbidden) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("create with webhook at localhost: %v, want egress.ErrForbidden for loopback", err)
	}
}

// TestCreateEmailWithoutSMTP: without an SMTP server an email channel is
// refused as unavailable, naming the channel; nothing is written.
func TestCreateEmailWithoutSMTP(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	svc := alerting.New(store, alerting.Config{})
	_, _, err := svc.Create(ctx, eventstore.Metadata{}, above("alice", "64000"))
	if !errors.Is(err, alerting.ErrChannelUnavailable) || !strings.Contains(err.Error(), "email") {
		t.Fatalf("create with email and no SMTP: %v, want ErrChannelUnavailable naming email", err)
	}
	if h, _ := store.Head(ctx); h != 0 {
		t.Fatalf("%d events written, want none", h)
	}
	ws := above("alice", "64000")
	ws.Channels = alerts.Channels{Websocket: true}
	if _, _, err := svc.Create(ctx, eventstore.Metadata{}, ws); err != nil {
		t.Fatalf("create with websocket only: %v", err)
	}
}

// TestCreateResolvesWebhookLast: the webhook's host is looked up after the
// checks that need no network, and not for a retry answered with the
// original alert: a keyed retry gets the original id and position even
// when the name now points somewhere forbidden, while a new alert to it is
// refused, and invalid input is refused as invalid without a look-up.
func TestCreateResolvesWebhookLast(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	table := hosts{"hooks.example.com": {"93.184.216.34"}}
	svc := alerting.New(store, alerting.Config{Resolver: table})
	keyed := eventstore.Metadata{Actor: "alice", IdempotencyKey: "k-1"}
	c := webhookAlert("alice", "https://hooks.example.com/hook")
	id, pos, err := svc.Create(ctx, keyed, c)
	must(t, err)

	table["hooks.example.com"] = []string{"10.0.0.1"} // the name now points inside
	if id2, pos2, err := svc.Create(ctx, keyed, c); err != nil || id2 != id || pos2 != pos {
		t.Fatalf("retry: %s@%d, %v; want the original %s@%d", id2, pos2, err, id, pos)
	}
	if _, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, c); !errors.Is(err, egress.ErrForbidden) {
		t.Fatalf("new alert to a name that now resolves to a private address: %v, want egress.ErrForbidden", err)
	}

	bad := webhookAlert("alice", "https://does-not-resolve.example/hook")
	bad.Direction = "sideways"
	if _, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, bad); !errors.Is(err, alerts.ErrValidation) {
		t.Fatalf("invalid alert with an unresolvable webhook: %v, want alerts.ErrValidation", err)
	}
}
