package ledger

import (
	"fmt"
	"reflect"
	"testing"
)

// TestSnapshotCoversEveryStateField fails when State gains or loses a
// field: EncodeSnapshot must then be extended and SnapshotSchema changed.
func TestSnapshotCoversEveryStateField(t *testing.T) {
	const fields = 12 // opened wallet accounts holds expiring processed version addresses accountAddrs deposits withdrawals debts
	if n := reflect.TypeOf(State{}).NumField(); n != fields {
		t.Fatalf("State has %d fields, the snapshot encodes %d: extend stateSnapshot and bump SnapshotSchema", n, fields)
	}
	const derived = 1 // expiring: DecodeSnapshot rebuilds it from holds
	if n := reflect.TypeOf(stateSnapshot{}).NumField(); n != fields-derived {
		t.Fatalf("stateSnapshot has %d fields, want %d", n, fields-derived)
	}
}

func TestDecodeSnapshotRefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"not json", `{"opened":tru`},
		{"bad coin", `{"wallet":{"coin":"btc!","exponent":8}}`},
		{"unbalanced", `{"accounts":{"alice":{"Available":5}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSnapshot([]byte(tc.data)); err == nil {
				t.Fatal("decoded a damaged snapshot")
			}
		})
	}
}

// BenchmarkEncodeSnapshot encodes the state of a wallet that has processed
// 20,000 idempotent transfers: what a busy wallet's snapshot costs.
func BenchmarkEncodeSnapshot(b *testing.B) {
	s := NewState()
	for i := range 20_000 {
		key := fmt.Sprintf("client-key-%06d", i)
		s.processed[key] = processed{hash: fmt.Sprintf("%064x", i), result: Result{EventType: TypeFundsTransferred, ID: "t-" + key, Revision: uint64(i)}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeSnapshot(s); err != nil {
			b.Fatal(err)
		}
	}
}
