package liability

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzParseAndVerifyProof feeds arbitrary bytes to ParseProof and every
// decoded proof to Verify against a real tree for each of its accounts. It
// never panics; every error wraps ErrInvalidProof; a decoded proof encodes
// back to a proof that decodes to itself; and a proof that verifies for an
// account carries that account's real balance.
func FuzzParseAndVerifyProof(f *testing.F) {
	es := entries(f, "BTC", 7)
	tree := mustBuild(f, "BTC", es)
	root := tree.Root()
	for _, e := range es {
		p, err := tree.Proof(e.Account)
		if err != nil {
			f.Fatal(err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"version":1,"coin":"BTC","salt":"00","balance":"-1","path":[{"side":"left","hash":"","sum":"1"}]}`))
	f.Add([]byte(`{"version":1,"coin":"BTC","salt":"abababababababababababababababab","balance":"9223372036854775807","path":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProof(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("ParseProof error %v does not wrap ErrInvalidProof", err)
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal of a decoded proof: %v", err)
		}
		q, err := ParseProof(again)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("re-encoded proof %s decodes to %+v, %v; want %+v", again, q, err, p)
		}
		for _, e := range es {
			err := Verify(p, root, e.Account)
			switch {
			case err == nil && p.Balance != e.Balance:
				t.Fatalf("proof of balance %d verifies for %s, whose balance is %d", p.Balance, e.Account, e.Balance)
			case err != nil && !errors.Is(err, ErrInvalidProof):
				t.Fatalf("Verify error %v does not wrap ErrInvalidProof", err)
			}
		}
	})
}
