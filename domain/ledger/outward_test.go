package ledger

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/money"
)

// TestOutwardAmounts: every amount of a ledger event becomes the REST
// API's decimal string, postings included; other members are kept.
func TestOutwardAmounts(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want map[string]any
	}{
		{"deposit seen", DepositSeen{ID: "tx:0", TxID: "tx", Account: "alice", Amount: 50_000_000,
			Postings: []Posting{{ChainAccount, Available, -50_000_000}, {"alice", Pending, 50_000_000}}},
			map[string]any{"amount": "0.50000000", "account": "alice", "postings": []any{
				map[string]any{"account": "@chain", "bucket": "available", "amount": "-0.50000000"},
				map[string]any{"account": "alice", "bucket": "pending", "amount": "0.50000000"}}}},
		{"withdrawal broadcast", WithdrawalBroadcast{ID: "w1", Account: "bob", Amount: 1, Fee: 2, FeeShortfall: 3},
			map[string]any{"amount": "0.00000001", "fee": "0.00000002", "fee_shortfall": "0.00000003", "id": "w1"}},
		{"deposit reversed", DepositReversed{ID: "tx:1", Amount: 7, Shortfall: 5},
			map[string]any{"amount": "0.00000007", "shortfall": "0.00000005"}},
		{"no amount", AccountOpened{Account: "carol"}, map[string]any{"account": "carol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Outward(data, money.BTC)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if !reflect.DeepEqual(got[k], want) {
					t.Errorf("%s = %#v, want %#v (in %s)", k, got[k], want, out)
				}
			}
			again, err := Outward(out, money.BTC)
			if err != nil || string(again) != string(out) {
				t.Errorf("Outward of its own output: %s, %v; want it unchanged", again, err)
			}
		})
	}
	if _, err := Outward([]byte(`{"amount":1.5}`), money.BTC); err == nil {
		t.Error("a fractional amount was accepted")
	}
}

// TestOutwardKnowsEveryAmount: every int64 member of every ledger event
// (the minor-unit amounts) is one Outward converts, so a new amount field
// cannot leave the service in minor units unnoticed.
func TestOutwardKnowsEveryAmount(t *testing.T) {
	for _, ev := range append(Events(), Event(nil)) {
		var typ reflect.Type
		if ev == nil {
			typ = reflect.TypeFor[Posting]()
		} else {
			typ = reflect.TypeOf(ev)
		}
		for f := range typ.Fields() {
			if f.Type.Kind() != reflect.Int64 {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if typ == reflect.TypeFor[Posting]() && name == "amount" {
				continue
			}
			if !slices.Contains(amountFields, name) {
				t.Errorf("%s.%s (json %q) is an int64 that Outward does not convert", typ.Name(), f.Name, name)
			}
		}
	}
}
