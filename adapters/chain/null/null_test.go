package null

import "testing"

func TestChain(t *testing.T) {
	a, b := New("BTC"), New("BTC")
	if a.NewAddress() != b.NewAddress() {
		t.Fatal("addresses are not deterministic")
	}
	addr := a.NewAddress()
	txid := a.Pay(addr, 5000)
	if s, err := a.Transaction(txid); err != nil || s.Confirmations != 0 || s.BlockHash != "" || s.Amount != 5000 {
		t.Fatalf("mempool tx: %+v %v", s, err)
	}
	a.Mine(1)
	s1, _ := a.Transaction(txid)
	a.Mine(5)
	s6, _ := a.Transaction(txid)
	if s1.Confirmations != 1 || s6.Confirmations != 6 || s1.BlockHash != s6.BlockHash || len(s6.BlockHash) != 64 {
		t.Fatalf("after blocks: %+v then %+v", s1, s6)
	}
	if _, err := a.Transaction("nope"); err == nil {
		t.Fatal("unknown tx found")
	}
}
