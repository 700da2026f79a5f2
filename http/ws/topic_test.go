package ws

import (
	"slices"
	"testing"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/prices"
)

func TestRouteOf(t *testing.T) {
	tests := []struct {
		stream, eventType string
		want              route
	}{
		{"wallet-main", ledger.TypeDepositSeen, route{TopicDeposits, walletReaders, "main"}},
		{"wallet-main", ledger.TypeDepositConfirmationsChanged, route{TopicDeposits, walletReaders, "main"}},
		{"wallet-main", ledger.TypeDepositConfirmed, route{TopicDeposits, walletReaders, "main"}},
		{"wallet-main", ledger.TypeDepositReversed, route{TopicDeposits, walletReaders, "main"}},
		{"wallet-a-b", ledger.TypeWithdrawalRequested, route{TopicWithdrawals, walletReaders, "a-b"}},
		{"wallet-main", ledger.TypeWithdrawalBroadcast, route{TopicWithdrawals, walletReaders, "main"}},
		{"wallet-main", ledger.TypeWithdrawalFailed, route{TopicWithdrawals, walletReaders, "main"}},
		{"wallet-main", ledger.TypeWithdrawalConfirmed, route{TopicWithdrawals, walletReaders, "main"}},
		{"wallet-main", ledger.TypeFundsTransferred, route{TopicTransfers, walletReaders, "main"}},
		{"alert-a1", alerts.TypeAlertCreated, route{TopicAlerts, alertOwner, "a1"}},
		{"alert-a1", alerts.TypeAlertTriggered, route{TopicAlerts, alertOwner, "a1"}},
		{"alert-a1", alerts.TypeAlertRearmed, route{TopicAlerts, alertOwner, "a1"}},
		{"alert-a1", alerts.TypeAlertDeleted, route{TopicAlerts, alertOwner, "a1"}},
		{"price-BTC-USD", prices.TypePriceTicked, route{TopicPrices, everyone, ""}},

		// never sent
		{"wallet-main", ledger.TypeWalletOpened, route{}},
		{"wallet-main", ledger.TypeHoldPlaced, route{}},
		{"wallet-main", ledger.TypeBalanceImported, route{}},
		{"wallet-main", ledger.TypeWalletLocked, route{}},
		{"wallet-", ledger.TypeDepositSeen, route{}},
		{"alert-", alerts.TypeAlertCreated, route{}},
		{"alert-a1", ledger.TypeDepositSeen, route{}},
		{"price-BTC-USD", ledger.TypeFundsTransferred, route{}},
		{"wallet-main", prices.TypePriceTicked, route{}},
		{"user-alice", "identity.user_created", route{}},
		{"deposit-main", ledger.TypeDepositSeen, route{}},
	}
	for _, tt := range tests {
		if got := routeOf(tt.stream, tt.eventType); got != tt.want {
			t.Errorf("routeOf(%q, %q) = %+v, want %+v", tt.stream, tt.eventType, got, tt.want)
		}
	}
	for _, topic := range []string{TopicDeposits, TopicWithdrawals, TopicTransfers, TopicAlerts, TopicPrices} {
		if !knownTopic(topic) {
			t.Errorf("knownTopic(%q) = false", topic)
		}
	}
	if knownTopic("holds") {
		t.Error(`knownTopic("holds") = true`)
	}
}

func TestOutbox(t *testing.T) {
	o := newOutbox(3)
	o.put(item{msg: []byte("a")})
	if err := o.putEvents([]item{{kind: kindEvent, pos: 1}, {kind: kindEvent, pos: 2}}, 5); err != nil {
		t.Fatal(err)
	}
	if err := o.putEvents(nil, 7); err != nil { // merged into the marker at 5
		t.Fatal(err)
	}
	if err := o.putEvents([]item{{kind: kindEvent, pos: 8}, {kind: kindEvent, pos: 9}}, 9); err != errTooSlow {
		t.Fatalf("putEvents beyond max = %v, want errTooSlow", err)
	}
	var got []uint64
	for it, ok := o.next(); ok; it, ok = o.next() {
		got = append(got, uint64(it.kind)*100+it.pos)
	}
	want := []uint64{0, 101, 102, 207}
	if !slices.Equal(got, want) {
		t.Fatalf("items = %v, want %v", got, want)
	}

	o.put(item{msg: []byte("b")})
	_ = o.putEvents([]item{{kind: kindEvent, pos: 10}}, 10)
	o.put(item{msg: []byte("c")})
	o.restart()
	got = nil
	for it, ok := o.next(); ok; it, ok = o.next() {
		got = append(got, uint64(it.msg[0]))
	}
	if !slices.Equal(got, []uint64{'b', 'c'}) {
		t.Fatalf("after restart = %v, want the two messages", got)
	}
	if err := o.putEvents([]item{{kind: kindEvent}, {kind: kindEvent}, {kind: kindEvent}}, 1); err != nil {
		t.Fatalf("restart did not reset the event count: %v", err)
	}
	o.close()
	o.put(item{msg: []byte("d")})
	if _, ok := o.next(); ok {
		t.Fatal("a closed outbox gave an item")
	}
}
