package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Domain is what the domain metrics read at every scrape (bounded to
// 2 s); a nil field leaves its metrics out. The metrics package declares
// these shapes; the wiring adapts the services to them.
type Domain struct {
	// Batches: the wallet writers' appends, the commands and events they
	// carried (commands per append is the batching).
	Batches func() (appends, commands, events uint64)
	// Chains: each coin's backend as its last poll found it.
	Chains func() []Chain
	// Notifications: walletnotify messages received, skipped as
	// duplicates, poisoned.
	Notifications func() (received, deduplicated, poisoned uint64)
	// Withdrawals: how many withdrawals are in each status.
	Withdrawals func(ctx context.Context) (map[string]int64, error)
	// Outbox: deliveries pending, attempts delivered and failed,
	// deliveries given up.
	Outbox func() (pending int, delivered, failed, gaveUp uint64)
}

// Chain is a coin's backend health.
type Chain struct {
	Coin, Kind string
	Height     int64
	Healthy    bool // the last poll answered
	CheckedAt  time.Time
}

var (
	appendsDesc  = prometheus.NewDesc("coinledger_wallet_appends_total", "Appends of the wallet writers (batches).", nil, nil)
	commandsDesc = prometheus.NewDesc("coinledger_wallet_commands_total", "Wallet commands appended (commands per append: the batch size).", nil, nil)
	eventsDesc   = prometheus.NewDesc("coinledger_wallet_events_total", "Events the wallet writers appended.", nil, nil)
	heightDesc   = prometheus.NewDesc("coinledger_chain_height", "Block height of the coin's node at its last poll.", []string{"coin", "backend"}, nil)
	healthyDesc  = prometheus.NewDesc("coinledger_chain_healthy", "1 when the coin's node answered its last poll.", []string{"coin", "backend"}, nil)
	checkedDesc  = prometheus.NewDesc("coinledger_chain_checked_timestamp_seconds", "When the coin's node was last polled.", []string{"coin", "backend"}, nil)
	notifiedDesc = prometheus.NewDesc("coinledger_walletnotify_total", "Walletnotify messages by outcome: received, deduplicated, poisoned.", []string{"outcome"}, nil)
	withdrawDesc = prometheus.NewDesc("coinledger_withdrawals", "Withdrawals by status.", []string{"status"}, nil)
	pendingDesc  = prometheus.NewDesc("coinledger_outbox_pending", "Notification deliveries waiting to be sent or retried.", nil, nil)
	attemptsDesc = prometheus.NewDesc("coinledger_outbox_attempts_total", "Notification delivery attempts by outcome: delivered, failed.", []string{"outcome"}, nil)
	gaveUpDesc   = prometheus.NewDesc("coinledger_outbox_gave_up_total", "Notification deliveries given up.", nil, nil)
	domainDescs  = []*prometheus.Desc{appendsDesc, commandsDesc, eventsDesc, heightDesc, healthyDesc, checkedDesc,
		notifiedDesc, withdrawDesc, pendingDesc, attemptsDesc, gaveUpDesc}
)

const counter, gauge = prometheus.CounterValue, prometheus.GaugeValue

// domainCollector reads Domain at scrape time.
type domainCollector struct{ d Domain }

func (c domainCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range domainDescs {
		ch <- d
	}
}

func (c domainCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	if d.Batches != nil {
		appends, commands, events := d.Batches()
		ch <- prometheus.MustNewConstMetric(appendsDesc, counter, float64(appends))
		ch <- prometheus.MustNewConstMetric(commandsDesc, counter, float64(commands))
		ch <- prometheus.MustNewConstMetric(eventsDesc, counter, float64(events))
	}
	if d.Chains != nil {
		for _, s := range d.Chains() {
			if s.CheckedAt.IsZero() {
				continue // not polled yet (or not led by this instance)
			}
			ch <- prometheus.MustNewConstMetric(heightDesc, gauge, float64(s.Height), s.Coin, s.Kind)
			ch <- prometheus.MustNewConstMetric(healthyDesc, gauge, is(s.Healthy), s.Coin, s.Kind)
			ch <- prometheus.MustNewConstMetric(checkedDesc, gauge, float64(s.CheckedAt.UnixMilli())/1000, s.Coin, s.Kind)
		}
	}
	if d.Notifications != nil {
		received, deduplicated, poisoned := d.Notifications()
		ch <- prometheus.MustNewConstMetric(notifiedDesc, counter, float64(received), "received")
		ch <- prometheus.MustNewConstMetric(notifiedDesc, counter, float64(deduplicated), "deduplicated")
		ch <- prometheus.MustNewConstMetric(notifiedDesc, counter, float64(poisoned), "poisoned")
	}
	if d.Withdrawals != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if byStatus, err := d.Withdrawals(ctx); err == nil {
			for status, n := range byStatus {
				ch <- prometheus.MustNewConstMetric(withdrawDesc, gauge, float64(n), status)
			}
		}
	}
	if d.Outbox != nil {
		pending, delivered, failed, gaveUp := d.Outbox()
		ch <- prometheus.MustNewConstMetric(pendingDesc, gauge, float64(pending))
		ch <- prometheus.MustNewConstMetric(attemptsDesc, counter, float64(delivered), "delivered")
		ch <- prometheus.MustNewConstMetric(attemptsDesc, counter, float64(failed), "failed")
		ch <- prometheus.MustNewConstMetric(gaveUpDesc, counter, float64(gaveUp))
	}
}

// RegisterDomain adds the domain metrics d reads.
func (m *Metrics) RegisterDomain(d Domain) { m.reg.MustRegister(domainCollector{d}) }
