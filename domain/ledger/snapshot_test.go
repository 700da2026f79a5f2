package ledger

import (
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
