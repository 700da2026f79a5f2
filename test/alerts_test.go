package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/email/mailpittest"
	"github.com/coinledger/coinledger/adapters/notify/webhook"
)

// mailpit is an SMTP server of the test's own, which the test stops and
// starts again on the same ports.
type mailpit struct {
	t         *testing.T
	smtp, web string
	cmd       *exec.Cmd
}

func startMailpit(t *testing.T) *mailpit {
	t.Helper()
	if _, err := exec.LookPath("mailpit"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mailpit is not on PATH: run the tests with test/run.sh, which installs it")
		}
		t.Skip("mailpit is not on PATH; install it with test/servers.sh")
	}
	m := &mailpit{t: t, smtp: freePort(t), web: freePort(t)}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mailpit) start() {
	m.t.Helper()
	m.cmd = exec.Command("mailpit", "--smtp", m.smtp, "--listen", m.web, "--disable-version-check",
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure", "--database", filepath.Join(m.t.TempDir(), "mail.db"))
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	waitFor(m.t, "mailpit to listen", func() bool {
		c, err := net.Dial("tcp", m.smtp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (m *mailpit) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

func (m *mailpit) api() string { return "http://" + m.web }

// alertWorld is a server with an SMTP server, a price feeder and users
// alice and bob.
type alertWorld struct {
	srv           *Server
	admin, feeder *client
	alice, bob    *client
	mail          *mailpit
	webhookSecret string
}

func newAlertWorld(t *testing.T) *alertWorld {
	w := &alertWorld{mail: startMailpit(t), webhookSecret: "webhook-secret-of-the-test-0123456789"}
	host, port, _ := net.SplitHostPort(w.mail.smtp)
	dir := t.TempDir()
	config := filepath.Join(dir, "coinledger.yml")
	yml := fmt.Sprintf(`
notify:
  smtp:
    host: %s
    port: %s
    tls: none
    from: alerts@coinledger.test
    timeout: 5s
  webhook_secret: %q
  retry: [300ms, 500ms, 1s, 1s, 1s, 1s, 2s, 2s, 2s, 2s, 2s, 2s]
  webhooks:
    # The test's receivers listen on loopback over plain http.
    allow_http: true
    allow_cidrs: ["127.0.0.0/8", "::1/128"]
`, host, port, w.webhookSecret)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	w.srv, w.admin = adminServer(t, filepath.Join(dir, "data"), "COINLEDGER_CONFIG="+config)
	login := func(name string, roles ...string) *client {
		body := map[string]any{"username": name, "email": name + "@example.test", "password": "password-" + name}
		if len(roles) > 0 {
			body["roles"] = roles
		}
		w.admin.expect(http.StatusCreated, "POST", "/users", body)
		c := newClient(t, w.srv)
		c.login(name, "password-"+name)
		return c
	}
	w.feeder, w.alice, w.bob = login("feeder", "price_feeder"), login("alice"), login("bob")
	return w
}

var tickClock = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// tick pushes a price with a fresh time.
func (w *alertWorld) tick(t *testing.T, pair, price string) {
	t.Helper()
	tickClock = tickClock.Add(time.Second)
	w.feeder.expect(http.StatusCreated, "POST", "/prices", map[string]any{"pair": pair, "price": price, "source": "test", "at": tickClock})
}

type alertJSON struct {
	ID, Status   string
	TriggerPrice string `json:"trigger_price"`
	Fired        int
}

func (w *alertWorld) waitAlert(t *testing.T, c *client, id, status string, fired int) alertJSON {
	t.Helper()
	var found alertJSON
	waitFor(t, "alert "+id+" to be "+status, func() bool {
		var list struct{ Alerts []alertJSON }
		c.expect(http.StatusOK, "GET", "/alerts", nil).JSON(t, &list)
		for _, a := range list.Alerts {
			if a.ID == id && a.Status == status && a.Fired == fired {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// TestAlertEmail: an alert fires once when pushed ticks cross its target,
// and exactly one email with the triggering price reaches a real SMTP
// server; an email whose SMTP server is down is delivered once it is back;
// a price oscillating around a re-arming alert's target fires it once;
// nobody sees or deletes another user's alert.
func TestAlertEmail(t *testing.T) {
	w := newAlertWorld(t)
	var a struct{ ID, Status string }
	w.alice.expect(http.StatusCreated, "POST", "/alerts", map[string]any{"pair": "BTC-USD", "direction": "above",
		"target": "64000", "channels": map[string]any{"email": "alice@example.test"}}).JSON(t, &a)
	if a.Status != "created" {
		t.Fatalf("new alert: %+v", a)
	}
	// Alerts belong to their owner: bob neither sees nor deletes it.
	var bobs struct{ Alerts []alertJSON }
	w.bob.expect(http.StatusOK, "GET", "/alerts", nil).JSON(t, &bobs)
	if len(bobs.Alerts) != 0 {
		t.Fatalf("bob sees %+v", bobs.Alerts)
	}
	w.bob.expect(http.StatusNotFound, "DELETE", "/alerts/"+a.ID, nil)
	w.bob.expect(http.StatusNotFound, "DELETE", "/alerts/no-such-alert", nil)

	w.tick(t, "BTC-USD", "63000")
	w.tick(t, "BTC-USD", "64100.5")
	w.tick(t, "BTC-USD", "64500")
	got := w.waitAlert(t, w.alice, a.ID, "triggered", 1)
	if got.TriggerPrice != "64100.5" {
		t.Fatalf("triggered alert: %+v, want the triggering price 64100.5", got)
	}
	msgs := mailpittest.WaitFor(t, w.mail.api(), "to:alice@example.test", 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "64100.5") || !strings.Contains(msgs[0].Subject, "BTC-USD") {
		t.Fatalf("emails: %+v", msgs)
	}
	var price struct{ Price string }
	w.bob.expect(http.StatusOK, "GET", "/prices/BTC-USD", nil).JSON(t, &price)
	if price.Price != "64500" {
		t.Fatalf("latest price %+v", price)
	}

	// SMTP down when the alert fires: delivered when it is back.
	w.mail.stop()
	var b struct{ ID string }
	w.alice.expect(http.StatusCreated, "POST", "/alerts", map[string]any{"pair": "BTC-USD", "direction": "below",
		"target": "60000", "channels": map[string]any{"email": "alice-down@example.test"}}).JSON(t, &b)
	w.tick(t, "BTC-USD", "59000.25")
	w.waitAlert(t, w.alice, b.ID, "triggered", 1)
	time.Sleep(1500 * time.Millisecond) // a few failed attempts
	w.mail.start()
	msgs = mailpittest.WaitFor(t, w.mail.api(), "to:alice-down@example.test", 1)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "59000.25") {
		t.Fatalf("email after the outage: %+v", msgs)
	}

	// Oscillation around a re-arming alert's target: one firing.
	var c struct{ ID string }
	w.alice.expect(http.StatusCreated, "POST", "/alerts", map[string]any{"pair": "ETH-USD", "direction": "above",
		"target": "3000", "channels": map[string]any{"email": "alice-osc@example.test"},
		"rearm": map[string]any{"hysteresis": "100", "cooldown": "1h"}}).JSON(t, &c)
	for _, p := range []string{"3001", "2990", "3002", "2950", "3005", "2999", "3010"} {
		w.tick(t, "ETH-USD", p)
	}
	w.waitAlert(t, w.alice, c.ID, "triggered", 1)
	mailpittest.WaitFor(t, w.mail.api(), "to:alice-osc@example.test", 1)
	time.Sleep(time.Second)
	if n := len(mailpittest.WaitFor(t, w.mail.api(), "to:alice-osc@example.test", 1)); n != 1 {
		t.Fatalf("%d emails for an oscillating price, want 1", n)
	}

	// The owner deletes; the alert is gone from the created list.
	w.alice.expect(http.StatusNoContent, "DELETE", "/alerts/"+c.ID, nil)
	var deleted struct{ Alerts []alertJSON }
	w.alice.expect(http.StatusOK, "GET", "/alerts?status=deleted", nil).JSON(t, &deleted)
	if len(deleted.Alerts) != 1 || deleted.Alerts[0].ID != c.ID {
		t.Fatalf("deleted alerts: %+v", deleted.Alerts)
	}
	// Only price feeders push prices.
	w.alice.expect(http.StatusForbidden, "POST", "/prices", map[string]any{"pair": "BTC-USD", "price": "1", "source": "x"})
}

// TestAlertWebhook: a firing is POSTed to the alert's webhook, signed with
// HMAC-SHA256 over timestamp and body; 500 answers are retried; the
// delivery log shows every attempt; a manual redelivery sends it again
// with the same delivery id.
func TestAlertWebhook(t *testing.T) {
	w := newAlertWorld(t)
	type received struct {
		delivery string
		body     []byte
	}
	got := make(chan received, 16)
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(w.webhookSecret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= 2 {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		got <- received{r.Header.Get(webhook.HeaderDelivery), body}
	}))
	defer recv.Close()

	var a struct{ ID string }
	w.alice.expect(http.StatusCreated, "POST", "/alerts", map[string]any{"pair": "LTC-USD", "direction": "above",
		"target": "100", "channels": map[string]any{"webhook": recv.URL + "/hook"}}).JSON(t, &a)
	w.tick(t, "LTC-USD", "101.75")
	var first received
	select {
	case first = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook delivered")
	}
	var payload struct {
		DeliveryID string `json:"delivery_id"`
		Price      string `json:"price"`
	}
	if err := json.Unmarshal(first.body, &payload); err != nil || payload.Price != "101.75" || payload.DeliveryID != first.delivery {
		t.Fatalf("webhook body %s (%v), delivery header %q", first.body, err, first.delivery)
	}
	var log struct {
		Deliveries []struct {
			ID, Status string
			Attempts   []struct {
				OK     bool
				Status int
			}
		}
	}
	waitFor(t, "the delivery log to show the delivery", func() bool {
		w.alice.expect(http.StatusOK, "GET", "/alerts/"+a.ID+"/deliveries", nil).JSON(t, &log)
		return len(log.Deliveries) == 1 && log.Deliveries[0].Status == "delivered"
	})
	at := log.Deliveries[0].Attempts
	if len(at) != 3 || at[0].Status != 500 || at[1].Status != 500 || !at[2].OK {
		t.Fatalf("attempts %+v, want two 500s then a success", at)
	}
	w.bob.expect(http.StatusNotFound, "GET", "/alerts/"+a.ID+"/deliveries", nil)
	w.bob.expect(http.StatusNotFound, "POST", "/alerts/"+a.ID+"/deliveries/"+first.delivery+"/redeliver", nil)

	w.alice.expect(http.StatusAccepted, "POST", "/alerts/"+a.ID+"/deliveries/"+first.delivery+"/redeliver", nil)
	select {
	case again := <-got:
		if again.delivery != first.delivery {
			t.Fatalf("redelivery id %q, want %q", again.delivery, first.delivery)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no redelivery")
	}
}

// TestAlertChannelRefusals: on a server without SMTP or webhook
// allowlist, an email channel is refused as unavailable (422
// channel_unavailable naming it), a webhook at loopback, private,
// link-local (metadata), CGNAT or IPv4-mapped addresses, behind a name
// that resolves to loopback, over http or with user info is refused (422
// webhook_target_forbidden), an email that is not a bare address is 400
// validation_failed naming channels.email; none of them is stored.
func TestAlertChannelRefusals(t *testing.T) {
	srv, admin := adminServer(t, t.TempDir())
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "alice", "email": "alice@example.test", "password": "password-alice"})
	alice := newClient(t, srv)
	alice.login("alice", "password-alice")
	alert := func(ch map[string]any) map[string]any {
		return map[string]any{"pair": "BTC-USD", "direction": "above", "target": "64000", "channels": ch}
	}

	r := alice.expect(http.StatusUnprocessableEntity, "POST", "/alerts", alert(map[string]any{"email": "alice@example.test"}))
	if r.problemCode() != "channel_unavailable" || !strings.Contains(string(r.Body), "email") {
		t.Fatalf("email alert without SMTP: %s, want channel_unavailable naming email", r.Body)
	}
	for _, hook := range []string{
		"https://127.0.0.1/hook",
		"https://localhost/hook", // resolves to loopback
		"https://[::1]/hook",
		"https://10.0.0.1/hook",
		"https://192.168.0.1/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://[::ffff:169.254.169.254]/",
		"https://[fe80::1]/hook",
		"https://100.64.0.1/hook",
		"https://0.0.0.0/hook",
		"https://[fd00::1]/hook",
		"http://93.184.216.34/hook",
		"https://user:pw@93.184.216.34/hook",
	} {
		r := alice.expect(http.StatusUnprocessableEntity, "POST", "/alerts", alert(map[string]any{"webhook": hook}))
		if r.problemCode() != "webhook_target_forbidden" {
			t.Errorf("webhook %s: %s, want webhook_target_forbidden", hook, r.Body)
		}
	}
	// A header injection (CR LF) is stopped at the edge as invalid_text,
	// before the e-mail rule sees it.
	for email, code := range map[string]string{"Alice <alice@example.test>": "validation_failed",
		"alice@example.test\r\nBcc: all@example.test": "invalid_text", "alice": "validation_failed"} {
		r := alice.do("POST", "/alerts", alert(map[string]any{"email": email}))
		var p struct {
			Code   string
			Errors []struct{ Field string }
		}
		r.JSON(t, &p)
		if r.Status != http.StatusBadRequest || p.Code != code || len(p.Errors) != 1 || p.Errors[0].Field != "channels.email" {
			t.Errorf("email %q: %d %s, want 400 %s naming channels.email", email, r.Status, r.Body, code)
		}
	}
	// Read once the alerts model has passed every event written so far: a
	// refused alert stored anyway would show.
	var list struct{ Alerts []alertJSON }
	alice.expect(http.StatusOK, "GET", "/alerts?min_position="+strconv.FormatUint(storeHead(t, admin), 10), nil).JSON(t, &list)
	if len(list.Alerts) != 0 {
		t.Fatalf("refused alerts were stored: %+v", list.Alerts)
	}
	// A websocket-only alert needs neither.
	alice.expect(http.StatusCreated, "POST", "/alerts", alert(map[string]any{"websocket": true}))
}

// TestPriceFeed: a configured poller (the generic URL + JSON path source)
// feeds the price streams through the bus; the price shows in the read
// model, exactly as the feed wrote it.
func TestPriceFeed(t *testing.T) {
	feed := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"data":{"pair":%q,"last":{"price":97123.456789012345,"time":1794000000}}}`, r.URL.Query().Get("pair"))
	}))
	defer feed.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "coinledger.yml")
	yml := fmt.Sprintf(`
price_feeds:
  pollers:
    - name: testfeed
      url: "%s/ticker?pair={base}-{quote}"
      price_path: data.last.price
      time_path: data.last.time
      pairs: [BTC-USD]
      interval: 1s
`, feed.URL)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, admin := adminServer(t, filepath.Join(dir, "data"), "COINLEDGER_CONFIG="+config)
	var p struct{ Price, Source string }
	waitFor(t, "the feed's price", func() bool {
		r, err := admin.try("GET", "/prices/BTC-USD", nil)
		if err != nil || r.Status != http.StatusOK {
			return false
		}
		r.JSON(t, &p)
		return true
	})
	if p.Price != "97123.456789012345" || p.Source != "testfeed" {
		t.Fatalf("price %+v, want 97123.456789012345 from testfeed", p)
	}
}
