package ws

import (
	"strings"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/prices"
)

// The topics a client can subscribe to.
const (
	TopicDeposits    = "deposits"
	TopicWithdrawals = "withdrawals"
	TopicTransfers   = "transfers"
	TopicAlerts      = "alerts"
	TopicPrices      = "prices"
)

// knownTopic reports whether topic is one of the topics.
func knownTopic(topic string) bool {
	switch topic {
	case TopicDeposits, TopicWithdrawals, TopicTransfers, TopicAlerts, TopicPrices:
		return true
	}
	return false
}

// audience says who may see an event.
type audience uint8

const (
	nobody        audience = iota
	everyone               // every authenticated caller
	walletReaders          // callers whose CanRead(route.key) holds
	alertOwner             // the owner of alert route.key
)

// route is where an event goes: its topic and who sees it.
type route struct {
	topic    string
	audience audience
	key      string // the wallet name or the alert id
}

// routeOf is the one place that decides what is sent: the topic of an event
// of type eventType in stream, and its audience. Events of no topic (the
// zero route) are never sent.
func routeOf(stream, eventType string) route {
	switch {
	case strings.HasPrefix(stream, ledger.StreamPrefix):
		w := strings.TrimPrefix(stream, ledger.StreamPrefix)
		if w == "" {
			return route{}
		}
		switch {
		case strings.HasPrefix(eventType, ledger.DepositTypePrefix):
			return route{TopicDeposits, walletReaders, w}
		case strings.HasPrefix(eventType, ledger.WithdrawalTypePrefix):
			return route{TopicWithdrawals, walletReaders, w}
		case eventType == ledger.TypeFundsTransferred:
			return route{TopicTransfers, walletReaders, w}
		}
	case strings.HasPrefix(stream, alerts.StreamPrefix):
		id := strings.TrimPrefix(stream, alerts.StreamPrefix)
		if id != "" && strings.HasPrefix(eventType, alerts.TypePrefix) {
			return route{TopicAlerts, alertOwner, id}
		}
	case strings.HasPrefix(stream, prices.StreamPrefix):
		if eventType == prices.TypePriceTicked {
			return route{TopicPrices, everyone, ""}
		}
	}
	return route{}
}
