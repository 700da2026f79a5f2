package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/coinledger/coinledger/adapters/bus"
	notifyadapter "github.com/coinledger/coinledger/adapters/notify"
	"github.com/coinledger/coinledger/adapters/notify/email"
	"github.com/coinledger/coinledger/adapters/notify/webhook"
	"github.com/coinledger/coinledger/adapters/pricefeed"
	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/app/market"
	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/logging"
)

// PriceFeedsConfig lists the price sources that feed the ledger besides
// the POST /prices push endpoint.
type PriceFeedsConfig struct {
	Pollers []pricefeed.PollerConfig `yaml:"pollers"`
	Streams []pricefeed.StreamConfig `yaml:"streams"`
}

// NotifyConfig configures alert notifications.
type NotifyConfig struct {
	// SMTP sends the alert emails; none: email deliveries give up.
	SMTP *email.Config `yaml:"smtp"`
	// WebhookSecret signs webhooks (HMAC-SHA256). Empty: a random key kept
	// in DATA_DIR/webhook.key.
	WebhookSecret Secret `yaml:"webhook_secret"`
	// Retry overrides the retry schedule (default 10s, 1m, then 10m, 6
	// attempts in all): the waits after the 1st, 2nd, ... failed attempt; a
	// delivery gives up when the list is exhausted.
	Retry []time.Duration `yaml:"retry"`
	// Webhooks says where alert webhooks may point.
	Webhooks WebhooksConfig `yaml:"webhooks"`
}

// WebhooksConfig is the egress policy of alert webhooks, checked when an
// alert is created and again on the address each delivery connects to.
// By default webhooks go only to public addresses over https.
type WebhooksConfig struct {
	// AllowHTTP allows plain http webhook URLs.
	AllowHTTP bool `yaml:"allow_http"`
	// AllowCIDRs are ranges webhooks may reach although they are loopback,
	// private, link-local etc. ("10.1.0.0/16"): internal receivers.
	AllowCIDRs []string `yaml:"allow_cidrs"`
}

// policy returns the webhook egress policy (the ranges are checked by
// Config.Validate).
func (w WebhooksConfig) policy() (egress.Policy, error) {
	allow, err := egress.ParseAllow(w.AllowCIDRs)
	if err != nil {
		return egress.Policy{}, fmt.Errorf("notify.webhooks.allow_cidrs: %w", err)
	}
	return egress.Policy{AllowHTTP: w.AllowHTTP, Allow: allow}, nil
}

// pricesTopic carries ticks from the feeds to the price streams.
const pricesTopic = "prices"

// wireMarket builds the price, alert and notification side: the market
// service that records ticks, the alert service and engine, the outbox
// notifier with its SMTP and webhook senders, and the price feeds.
func (svc *service) wireMarket(cfg *Config, ps pubSub, logger *slog.Logger) (*market.Service, *alerting.Service, *outbox.Notifier, error) {
	mkt := market.New(svc.store, time.Now)
	svc.closers = append(svc.closers, func() error { mkt.Close(); return nil })
	hooks, err := cfg.Notify.Webhooks.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	alertSvc := alerting.New(svc.store, alerting.Config{Email: cfg.Notify.SMTP != nil, Webhooks: hooks})
	svc.follow(alerting.NewEngine(svc.store, logger))

	n, err := newNotifier(cfg, hooks, svc.store, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	svc.follow(n.Follower()) // queues deliveries, keeps the pending ones
	svc.workers = append(svc.workers, n.Run)

	feeds, err := priceFeeds(cfg, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(feeds) > 0 {
		router, err := message.NewRouter(message.RouterConfig{}, logging.Watermill(logger))
		if err != nil {
			return nil, nil, nil, err
		}
		router.AddConsumerHandler("record-ticks", pricesTopic, ps, recordTicks(mkt, logger))
		svc.workers = append(svc.workers, router.Run)
		sink := publishTicks(ps)
		for _, f := range feeds {
			svc.workers = append(svc.workers, func(ctx context.Context) error { return f.Run(ctx, sink) })
		}
	}
	return mkt, alertSvc, n, nil
}

func priceFeeds(cfg *Config, logger *slog.Logger) ([]pricefeed.Source, error) {
	var out []pricefeed.Source
	for _, pc := range cfg.PriceFeeds.Pollers {
		pc.Logger = logger
		p, err := pricefeed.NewPoller(pc)
		if err != nil {
			return nil, fmt.Errorf("price_feeds: %w", err)
		}
		out = append(out, p)
	}
	for _, sc := range cfg.PriceFeeds.Streams {
		sc.Logger = logger
		s, err := pricefeed.NewStream(sc)
		if err != nil {
			return nil, fmt.Errorf("price_feeds: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// publishTicks puts feed ticks on the prices topic.
func publishTicks(pub message.Publisher) pricefeed.Sink {
	return func(ctx context.Context, t prices.PriceTicked) error {
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		msg := message.NewMessage(watermill.NewUUID(), b)
		msg.SetContext(ctx)
		return pub.Publish(pricesTopic, msg)
	}
}

// recordTicks records the ticks of the prices topic. A tick that cannot be
// recorded is logged and dropped: prices are perishable, the feed's next
// poll brings a fresh one (a repeated tick is dropped by the domain).
func recordTicks(mkt *market.Service, logger *slog.Logger) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var t prices.PriceTicked
		if err := json.Unmarshal(msg.Payload, &t); err != nil {
			logger.Warn("malformed tick dropped", "err", err)
			return nil
		}
		ctx := bus.Context(msg)
		meta := eventstore.Metadata{Actor: "feed:" + t.Source, CorrelationID: eventstore.CorrelationID(ctx)}
		if _, err := mkt.Record(ctx, meta, t.Pair, prices.RecordTick{Source: t.Source, Price: t.Price, At: t.At}); err != nil {
			logger.Warn("tick not recorded", "pair", t.Pair, "source", t.Source, "err", err)
		}
		return nil
	}
}

func newNotifier(cfg *Config, hooks egress.Policy, store eventstore.Store, logger *slog.Logger) (*outbox.Notifier, error) {
	secret, err := keyFile(cfg, "webhook.key", cfg.Notify.WebhookSecret)
	if err != nil {
		return nil, err
	}
	nc := outbox.Config{Store: store, Hooks: poster{webhook.New(webhook.GuardedClient(hooks, 30*time.Second), time.Now)},
		WebhookSecret: secret, Logger: logger, Permanent: permanent}
	if s := cfg.Notify.SMTP; s != nil {
		sender, err := email.New(*s)
		if err != nil {
			return nil, fmt.Errorf("notify smtp: %w", err)
		}
		nc.Mail, nc.From = mailer{sender}, s.From
	}
	if r := cfg.Notify.Retry; len(r) > 0 {
		nc.Backoff = func(failed int) (time.Duration, bool) {
			if failed < 1 || failed > len(r) {
				return 0, false
			}
			return r[failed-1], true
		}
	}
	return outbox.New(nc), nil
}

// permanent: errors a retry cannot mend.
func permanent(err error) bool {
	var se *outbox.StatusError
	return errors.Is(err, notifyadapter.ErrPermanent) || (errors.As(err, &se) && se.Permanent())
}

// mailer adapts the SMTP sender to the notifier.
type mailer struct{ s *email.Sender }

func (m mailer) SendMail(ctx context.Context, ml outbox.Mail) error {
	return m.s.Send(ctx, email.Message{To: []string{ml.To}, Subject: ml.Subject, Text: ml.Text,
		ID: strings.Trim(ml.MessageID, "<>")})
}

// poster adapts the webhook sender to the notifier.
type poster struct{ s *webhook.Sender }

func (p poster) PostWebhook(ctx context.Context, w outbox.Webhook) (int, error) {
	res, err := p.s.Deliver(ctx, webhook.Request{URL: w.URL, Secret: w.Secret, DeliveryID: w.DeliveryID, EventType: w.EventType, Body: w.Body})
	return res.Status, err
}

// adminPasswordFile, in the data directory, receives the admin password
// generated at first start.
const adminPasswordFile = "admin-password"

// keepAdminPassword writes a generated admin password to path (mode
// 0600, synced) and refuses to replace a file already there: the
// password is delivered only this way, so it must be on disk before the
// admin is registered.
func keepAdminPassword(path, password string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	created, err := createSynced(path, []byte(password+"\n"))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !created {
		return fmt.Errorf("%s exists already: move it away to let a new admin password be generated", path)
	}
	return nil
}

// keyFile returns secret, or a random key kept in DATA_DIR/name (created
// at first start), for instances that share nothing but the data dir.
func keyFile(cfg *Config, name string, secret Secret) ([]byte, error) {
	if secret != "" {
		return []byte(secret.Reveal()), nil
	}
	path := filepath.Join(cfg.DataDir, name)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		var key [32]byte
		rand.Read(key[:])
		b = []byte(hex.EncodeToString(key[:]))
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, err
		}
		created, err := createSynced(path, b)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		if !created { // another process created it first: use its key
			if b, err = os.ReadFile(path); err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// createSynced creates path with mode 0600 holding b, durably and only if
// it does not exist (created false): the bytes are synced under a temporary
// name, linked into place and the directory synced, so a crash leaves
// either no file or the whole file. A key must not be lost after events
// sealed or signed with it were acknowledged.
func createSynced(path string, b []byte) (created bool, err error) {
	tmp, err := syncedTemp(path, b)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, syncDir(path)
}

// replaceSynced replaces path with a file of mode 0600 holding b, durably
// and atomically: readers see the old file or the new one, whole.
func replaceSynced(path string, b []byte) error {
	tmp, err := syncedTemp(path, b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(path)
}

// syncedTemp writes b, synced, to a new temporary file of mode 0600 beside
// path and returns its name.
func syncedTemp(path string, b []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// syncDir syncs the directory of path, so a new name in it is durable.
func syncDir(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
