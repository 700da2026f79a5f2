package audit_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
)

func key(t *testing.T, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func statement() audit.Statement {
	return audit.Statement{
		Number: 3, Position: 1200, Events: 1100, GlobalHead: audit.Hash{1}, Streams: 40, StreamRoot: audit.Hash{2},
		Liabilities: []liability.Root{{Coin: "BTC", Hash: liability.Hash{3}, Total: 150_000}},
		Time:        time.Date(2026, 12, 7, 22, 0, 0, 123456789, time.UTC),
	}
}

func TestCheckpointSignsEveryField(t *testing.T) {
	k := key(t, 1)
	keys := map[string]ed25519.PublicKey{audit.KeyID(k.Public().(ed25519.PublicKey)): k.Public().(ed25519.PublicKey)}
	c := audit.Sign(statement(), k)
	if err := c.Verify(keys); err != nil {
		t.Fatalf("untouched: %v", err)
	}
	edits := map[string]func(*audit.Checkpoint){
		"number":   func(c *audit.Checkpoint) { c.Number++ },
		"position": func(c *audit.Checkpoint) { c.Position++ },
		"events":   func(c *audit.Checkpoint) { c.Events-- },
		"head":     func(c *audit.Checkpoint) { c.GlobalHead[31] ^= 1 },
		"streams":  func(c *audit.Checkpoint) { c.Streams++ },
		"root":     func(c *audit.Checkpoint) { c.StreamRoot[0] ^= 1 },
		"total": func(c *audit.Checkpoint) {
			c.Liabilities = []liability.Root{{Coin: "BTC", Hash: liability.Hash{3}, Total: 1}}
		},
		"coin": func(c *audit.Checkpoint) {
			c.Liabilities = []liability.Root{{Coin: "LTC", Hash: liability.Hash{3}, Total: 150_000}}
		},
		"no tree":   func(c *audit.Checkpoint) { c.Liabilities = nil },
		"time":      func(c *audit.Checkpoint) { c.Time = c.Time.Add(time.Microsecond) },
		"signature": func(c *audit.Checkpoint) { c.Signature = append([]byte{c.Signature[0] ^ 1}, c.Signature[1:]...) },
		"other key": func(c *audit.Checkpoint) { *c = audit.Sign(c.Statement, key(t, 2)) },
		"key id":    func(c *audit.Checkpoint) { c.KeyID = "0000000000000000" },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			c := audit.Sign(statement(), k)
			edit(&c)
			err := c.Verify(keys)
			if !errors.Is(err, audit.ErrBadSignature) && !errors.Is(err, audit.ErrUnknownKey) {
				t.Fatalf("Verify = %v, want a refusal", err)
			}
		})
	}
}

func TestCheckpointJSONRoundTrips(t *testing.T) {
	c := audit.Sign(statement(), key(t, 1))
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.ParseCheckpoint(b)
	if err != nil {
		t.Fatalf("parse %s: %v", b, err)
	}
	pub := key(t, 1).Public().(ed25519.PublicKey)
	if err := got.Verify(map[string]ed25519.PublicKey{audit.KeyID(pub): pub}); err != nil {
		t.Fatalf("after a round trip: %v\n%s", err, b)
	}
	for _, bad := range []string{
		`{"number":1,"extra":1,"signature":"` + string(make([]byte, 0)) + `"}`,
		`{"number":1,"signature":"AAAA"}`,
		`{"liabilities":[{"coin":"BTC","root":"` + liability.Hash{}.String() + `","total":"-1"}],"signature":"` + b64(64) + `"}`,
		`{"liabilities":[{"coin":"BTC","root":"` + liability.Hash{}.String() + `","total":"01"}],"signature":"` + b64(64) + `"}`,
		`{"signature":"` + b64(64) + `"} {}`,
	} {
		if _, err := audit.ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("ParseCheckpoint(%s) accepted it", bad)
		}
	}
}

func b64(n int) string {
	b, _ := json.Marshal(make([]byte, n))
	return string(b[1 : len(b)-1])
}

func TestStreamRoot(t *testing.T) {
	heads := map[string]audit.Head{"a": {Next: 1, Hash: audit.Hash{1}}, "b": {Next: 2, Hash: audit.Hash{2}}, "c": {Next: 1, Hash: audit.Hash{3}}}
	root := audit.StreamRoot(heads)
	if audit.StreamRoot(map[string]audit.Head{}) == root {
		t.Fatal("empty root equals a full one")
	}
	for name, edit := range map[string]func(map[string]audit.Head){
		"drop a stream":  func(m map[string]audit.Head) { delete(m, "b") },
		"older head":     func(m map[string]audit.Head) { m["b"] = audit.Head{Next: 1, Hash: audit.Hash{2}} },
		"other hash":     func(m map[string]audit.Head) { m["c"] = audit.Head{Next: 1, Hash: audit.Hash{4}} },
		"renamed":        func(m map[string]audit.Head) { m["d"] = m["c"]; delete(m, "c") },
		"added a stream": func(m map[string]audit.Head) { m["e"] = audit.Head{Next: 1} },
	} {
		m := map[string]audit.Head{}
		for k, v := range heads {
			m[k] = v
		}
		edit(m)
		if audit.StreamRoot(m) == root {
			t.Errorf("%s: same root", name)
		}
	}
}
