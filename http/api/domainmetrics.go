package api

import (
	"context"

	"github.com/coinledger/coinledger/http/metrics"
	"github.com/coinledger/coinledger/projections/custody"
)

// domainMetrics adapts the services to what the domain metrics read.
func (d Deps) domainMetrics() metrics.Domain {
	m := metrics.Domain{Notifications: d.Notifications}
	if d.Wallets != nil {
		m.Batches = func() (uint64, uint64, uint64) {
			s := d.Wallets.BatchStats()
			return s.Appends, s.Commands, s.Events
		}
	}
	if d.Chains != nil {
		m.Chains = func() []metrics.Chain {
			var out []metrics.Chain
			for _, s := range d.Chains.Syncers() {
				h := s.Health()
				out = append(out, metrics.Chain{Coin: s.Coin(), Kind: s.Kind(), Height: h.Height, Healthy: h.Err == nil,
					CheckedAt: h.CheckedAt})
			}
			return out
		}
	}
	if d.DB != nil {
		m.Withdrawals = func(ctx context.Context) (map[string]int64, error) {
			byStatus, err := custody.WithdrawalsByStatus(ctx, d.DB)
			out := make(map[string]int64, len(byStatus))
			for status, n := range byStatus {
				out[string(status)] = n
			}
			return out, err
		}
	}
	if d.Outbox != nil {
		m.Outbox = func() (int, uint64, uint64, uint64) {
			s := d.Outbox.Stats()
			return s.Pending, s.Delivered, s.Failed, s.GaveUp
		}
	}
	return m
}
