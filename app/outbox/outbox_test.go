package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
)

func TestOneEmailPerTrigger(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	n := start(t, outbox.Config{Store: store, Mail: m, From: "Alerts <alerts@coinledger.example>"})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com", Websocket: true})
	s.create(t, "quiet", "bob", alerts.Channels{Websocket: true}) // nothing to deliver
	tr := s.fire(t, "a1", "64123.45")
	s.fire(t, "quiet", "64123.45")
	n.idle(t)

	mails, calls := m.mails()
	if len(mails) != 1 || calls != 1 {
		t.Fatalf("%d mails in %d calls, want 1", len(mails), calls)
	}
	mail := mails[0]
	id := outbox.DeliveryID("a1", 1, outbox.ChannelEmail)
	if id != "a1.1.email" {
		t.Fatalf("delivery id %q", id)
	}
	if mail.To != "alice@example.com" || mail.From != "Alerts <alerts@coinledger.example>" ||
		mail.MessageID != "<a1.1.email@coinledger.example>" {
		t.Fatalf("mail headers %+v", mail)
	}
	for _, want := range []string{"BTC-USD", "64123.45", "64000", "above"} {
		if !strings.Contains(mail.Subject, want) {
			t.Errorf("subject %q lacks %q", mail.Subject, want)
		}
	}
	for _, want := range []string{"BTC-USD", "64123.45", "64000", "at or above", tr.At.UTC().Format(time.RFC3339), "a1"} {
		if !strings.Contains(mail.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, mail.Text)
		}
	}

	ds := deliveries(t, n.Notifier, "a1")
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	d := ds[0]
	if d.Queued.DeliveryID != id || d.Status != outbox.StatusDelivered || len(d.Attempts) != 1 || !d.Attempts[0].OK ||
		d.Queued.Price != tr.Price || d.Queued.TickPosition != tr.TickPosition || d.Queued.Owner != "alice" || d.DeliveredAt.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
	if ds := deliveries(t, n.Notifier, "quiet"); len(ds) != 0 {
		t.Fatalf("websocket-only alert has deliveries %+v", ds)
	}

	// A second firing is a second delivery.
	s.fire(t, "a1", "64500")
	n.idle(t)
	if mails, _ := m.mails(); len(mails) != 2 || mails[1].MessageID != "<a1.2.email@coinledger.example>" ||
		!strings.Contains(mails[1].Text, "64500") {
		t.Fatalf("second firing: %+v", mails)
	}
	if ds := deliveries(t, n.Notifier, "a1"); len(ds) != 2 || ds[1].Queued.Seq != 2 || ds[1].Status != outbox.StatusDelivered {
		t.Fatalf("deliveries after the second firing: %+v", ds)
	}
}

func TestReplaySendsNothing(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	first := &mailer{}
	n := start(t, outbox.Config{Store: store, Mail: first})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	if mails, _ := first.mails(); len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	must(t, n.stop())
	head, err := store.Head(ctx)
	must(t, err)

	// A new notifier replays the whole log: it sends and appends nothing.
	second := &mailer{}
	n2 := start(t, outbox.Config{Store: store, Mail: second})
	n2.idle(t)
	if _, calls := second.mails(); calls != 0 {
		t.Fatalf("replay sent %d mails", calls)
	}
	if h, _ := store.Head(ctx); h != head {
		t.Fatalf("replay appended %d events", h-head)
	}
	must(t, n2.stop())

	// A firing the notifier missed while stopped is sent once on start.
	s.fire(t, "a1", "64002")
	third := &mailer{}
	n3 := start(t, outbox.Config{Store: store, Mail: third})
	n3.idle(t)
	mails, calls := third.mails()
	if len(mails) != 1 || calls != 1 || mails[0].MessageID != "<a1.2.email@coinledger>" {
		t.Fatalf("after restart: %d calls, mails %+v", calls, mails)
	}
}

func TestRetryThenDelivered(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	m.fail(2, errSMTP)
	n := start(t, outbox.Config{Store: store, Mail: m, Backoff: fast(6)})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	mails, calls := m.mails()
	if len(mails) != 1 || calls != 3 {
		t.Fatalf("%d mails in %d calls, want 1 in 3", len(mails), calls)
	}
	ds := deliveries(t, n.Notifier, "a1")
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	d := ds[0]
	if d.Status != outbox.StatusDelivered || len(d.Attempts) != 3 {
		t.Fatalf("delivery %+v", d)
	}
	for i, a := range d.Attempts {
		if a.Attempt != i+1 || a.At.IsZero() {
			t.Errorf("attempt %d: %+v", i, a)
		}
		if i < 2 && (a.OK || a.Error != errSMTP.Error() || !a.NextAttempt.After(a.At)) {
			t.Errorf("failed attempt %d: %+v", i, a)
		}
	}
	if last := d.Attempts[2]; !last.OK || last.Error != "" || !last.NextAttempt.IsZero() {
		t.Errorf("last attempt %+v", last)
	}
}

var errBounce = errors.New("550 no such user")

func TestPermanentGivesUp(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	m.fail(-1, errBounce)
	n := start(t, outbox.Config{Store: store, Mail: m, Backoff: fast(6),
		Permanent: func(err error) bool { return errors.Is(err, errBounce) }})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	if _, calls := m.mails(); calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
	d := deliveries(t, n.Notifier, "a1")[0]
	if d.Status != outbox.StatusGaveUp || len(d.Attempts) != 1 || !strings.Contains(d.Reason, "550") || d.GaveUpAt.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
}

func TestGiveUpAfterSchedule(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	m.fail(-1, errSMTP)
	n := start(t, outbox.Config{Store: store, Mail: m, Backoff: fast(4)})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	if _, calls := m.mails(); calls != 4 {
		t.Fatalf("%d calls, want 4", calls)
	}
	d := deliveries(t, n.Notifier, "a1")[0]
	if d.Status != outbox.StatusGaveUp || len(d.Attempts) != 4 || !strings.Contains(d.Reason, "4 attempts") {
		t.Fatalf("delivery %+v", d)
	}
	if last := d.Attempts[3]; last.OK || !last.NextAttempt.IsZero() {
		t.Fatalf("last attempt %+v: no next attempt after giving up", last)
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		d, ok := outbox.DefaultBackoff(i + 1)
		if !ok || d != w {
			t.Errorf("after %d failures: %s, %v; want %s", i+1, d, ok, w)
		}
	}
	if _, ok := outbox.DefaultBackoff(outbox.DefaultMaxAttempts); ok {
		t.Errorf("retries after %d failed attempts", outbox.DefaultMaxAttempts)
	}
}

func TestRedeliver(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	m.fail(-1, errSMTP)
	n := start(t, outbox.Config{Store: store, Mail: m, Backoff: fast(2)})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	id := outbox.DeliveryID("a1", 1, outbox.ChannelEmail)
	if d := deliveries(t, n.Notifier, "a1")[0]; d.Status != outbox.StatusGaveUp {
		t.Fatalf("delivery %+v", d)
	}

	// Nobody but the owner can redeliver, and they learn nothing.
	for _, tc := range []struct{ id, by string }{{id, "mallory"}, {id, ""}, {"a1.9.email", "alice"}, {"a1.1.sms", "alice"}, {"x", "alice"}} {
		if err := n.Redeliver(ctx, tc.id, tc.by); !errors.Is(err, outbox.ErrNotFound) {
			t.Fatalf("Redeliver(%q, %q): %v, want ErrNotFound", tc.id, tc.by, err)
		}
	}
	m.fail(0, nil)
	must(t, n.Redeliver(ctx, id, "alice"))
	n.idle(t)
	mails, calls := m.mails()
	if len(mails) != 1 || calls != 3 || mails[0].MessageID != "<a1.1.email@coinledger>" {
		t.Fatalf("%d calls, mails %+v", calls, mails)
	}
	d := deliveries(t, n.Notifier, "a1")[0]
	if d.Status != outbox.StatusDelivered || len(d.Attempts) != 3 || len(d.Redeliveries) != 1 || d.Redeliveries[0].By != "alice" {
		t.Fatalf("delivery %+v", d)
	}

	// A replay does not redeliver again.
	must(t, n.stop())
	again := &mailer{}
	start(t, outbox.Config{Store: store, Mail: again}).idle(t)
	if _, calls := again.mails(); calls != 0 {
		t.Fatalf("replay of a redelivery sent %d mails", calls)
	}
}

func TestWebhook(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	m := &mailer{}
	p := &poster{answers: []int{503}}
	secret := []byte("s3cret")
	n := start(t, outbox.Config{Store: store, Mail: m, Hooks: p, WebhookSecret: secret, Backoff: fast(6)})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com", Webhook: "https://hooks.example.com/x"})
	tr := s.fire(t, "a1", "64123.45")
	n.idle(t)

	if mails, _ := m.mails(); len(mails) != 1 {
		t.Fatalf("%d mails", len(mails))
	}
	hooks := p.webhooks()
	if len(hooks) != 2 {
		t.Fatalf("%d webhook posts, want 2 (503, then 200)", len(hooks))
	}
	w := hooks[1]
	id := "a1.1.webhook"
	if w.URL != "https://hooks.example.com/x" || string(w.Secret) != "s3cret" || w.DeliveryID != id || w.EventType != "alert.triggered" {
		t.Fatalf("webhook %+v", w)
	}
	if string(hooks[0].Body) != string(w.Body) {
		t.Fatal("a retry posts another body")
	}
	var body struct {
		DeliveryID string `json:"delivery_id"`
		Event      string `json:"event"`
		Alert      struct {
			ID        string `json:"id"`
			Pair      string `json:"pair"`
			Direction string `json:"direction"`
			Target    string `json:"target"`
			Seq       int    `json:"seq"`
		} `json:"alert"`
		Price        string    `json:"price"`
		TickPosition uint64    `json:"tick_position"`
		At           time.Time `json:"at"`
	}
	must(t, json.Unmarshal(w.Body, &body))
	if body.DeliveryID != id || body.Event != "alert.triggered" || body.Alert.ID != "a1" || body.Alert.Pair != "BTC-USD" ||
		body.Alert.Direction != "above" || body.Alert.Target != "64000" || body.Alert.Seq != 1 || body.Price != "64123.45" ||
		body.TickPosition != tr.TickPosition || !body.At.Equal(tr.At) {
		t.Fatalf("body %s", w.Body)
	}
	ds := deliveries(t, n.Notifier, "a1")
	if len(ds) != 2 || ds[0].Queued.Channel != outbox.ChannelEmail || ds[1].Queued.Channel != outbox.ChannelWebhook {
		t.Fatalf("deliveries %+v", ds)
	}
	wd := ds[1]
	if wd.Status != outbox.StatusDelivered || len(wd.Attempts) != 2 || wd.Attempts[0].Status != 503 || wd.Attempts[0].OK ||
		wd.Attempts[1].Status != 200 || !wd.Attempts[1].OK {
		t.Fatalf("webhook delivery %+v", wd)
	}

	// A 4xx answer is permanent.
	p.mu.Lock()
	p.answers = []int{404}
	p.mu.Unlock()
	s.fire(t, "a1", "64200")
	n.idle(t)
	wd = deliveries(t, n.Notifier, "a1")[3]
	if wd.Queued.DeliveryID != "a1.2.webhook" || wd.Status != outbox.StatusGaveUp || len(wd.Attempts) != 1 || wd.Attempts[0].Status != 404 {
		t.Fatalf("webhook answered 404: %+v", wd)
	}
}

func TestNoAdapterGivesUp(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	n := start(t, outbox.Config{Store: store})
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	n.idle(t)
	if d := deliveries(t, n.Notifier, "a1")[0]; d.Status != outbox.StatusGaveUp || len(d.Attempts) != 1 {
		t.Fatalf("delivery %+v", d)
	}
}

func TestQueuedOnce(t *testing.T) {
	// Two notifiers over one log (a restart racing the old one, or a
	// rebuild) queue every delivery once: the queued event expects no stream.
	ctx := context.Background()
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	m1, m2 := &mailer{}, &mailer{}
	n1 := start(t, outbox.Config{Store: store, Mail: m1})
	n2 := start(t, outbox.Config{Store: store, Mail: m2})
	n1.idle(t)
	n2.idle(t)
	events, err := store.ReadStream(ctx, "delivery-a1.1.email", 0, 100)
	must(t, err)
	queued := 0
	for _, e := range events {
		if e.Type == outbox.TypeQueued {
			queued++
		}
	}
	if queued != 1 {
		t.Fatalf("%d queued events, want 1", queued)
	}
}
