package api

import (
	"context"
	"testing"

	"github.com/coinledger/coinledger/adapters/chain/null"
	"github.com/coinledger/coinledger/app/chainsync"
)

// realNode is a backend of a real node: a chainsync.Backend without the
// simulator's injection methods.
type realNode struct{ chainsync.Backend }

// TestSimulatorIsAnOptionalInterface checks that the simulate endpoints find
// the simulated chain through the simulator interface declared here (not
// the null adapter's concrete type), and refuse any other backend.
func TestSimulatorIsAnOptionalInterface(t *testing.T) {
	var b chainsync.Backend = null.New("BTC")
	sim, ok := b.(simulator)
	if !ok {
		t.Fatal("the null chain does not implement simulator")
	}
	addr, err := b.NewAddress(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	txid := sim.Pay(addr, 1000)
	if h := sim.Mine(2); h != 2 {
		t.Fatalf("height after mining 2 blocks = %d, want 2", h)
	}
	tx, err := b.Transaction(context.Background(), txid)
	if err != nil || tx.Confirmations != 2 {
		t.Fatalf("Transaction = %+v, %v; want 2 confirmations", tx, err)
	}
	if _, ok := chainsync.Backend(realNode{b}).(simulator); ok {
		t.Fatal("a backend without the injection methods passed for a simulator")
	}
}
