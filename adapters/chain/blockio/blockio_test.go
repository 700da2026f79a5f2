package blockio_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/coinledger/coinledger/adapters/chain/blockio"
	"github.com/coinledger/coinledger/adapters/chain/blockio/blockiotest"
	"github.com/coinledger/coinledger/adapters/chain/chaintest"
	"github.com/coinledger/coinledger/app/chainsync"
)

func TestConformance(t *testing.T) {
	chaintest.Run(t, func(t *testing.T) chaintest.Fixture {
		s := blockiotest.New(t, blockiotest.Options{})
		return chaintest.Fixture{
			Backend:  mustBackend(t, s.Config(), blockiotest.Signer{}),
			Pay:      func(_ testing.TB, address string, amount int64) string { return s.Pay(address, amount) },
			Mine:     func(_ testing.TB, n int) { s.Mine(n) },
			External: func(testing.TB) string { return s.ExternalAddress() },
			Amount:   1_000_000,
		}
	})
}

func mustBackend(t testing.TB, cfg blockio.Config, signer blockio.Signer) *blockio.Backend {
	t.Helper()
	b, err := blockio.New(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newFixture(t *testing.T, opts blockiotest.Options) (*blockiotest.Server, *blockio.Backend) {
	t.Helper()
	s := blockiotest.New(t, opts)
	return s, mustBackend(t, s.Config(), blockiotest.Signer{})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg   blockio.Config
		wants []string // substrings of the error; none: valid
	}{
		"valid":              {cfg: blockio.Config{APIKey: "k", Network: "dogetest"}},
		"loopback http":      {cfg: blockio.Config{APIKey: "k", Network: "BTC", BaseURL: "http://127.0.0.1:9/api/v2"}},
		"everything wrong":   {cfg: blockio.Config{Network: "ETH", BaseURL: "http://block.io/api/v2/", Timeout: -1}, wants: []string{"api_key", "network", "https", "timeout"}},
		"credentials in url": {cfg: blockio.Config{APIKey: "k", Network: "BTC", BaseURL: "https://u:p@block.io/api/v2/"}, wants: []string{"user info"}},
		"relative url":       {cfg: blockio.Config{APIKey: "k", Network: "BTC", BaseURL: "/api/v2/"}, wants: []string{"absolute"}},
	} {
		err := tc.cfg.Validate()
		if len(tc.wants) == 0 {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, blockio.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
			continue
		}
		for _, w := range tc.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not mention %q", name, err, w)
			}
		}
	}
	cfg := blockio.Config{APIKey: "k", Network: " btctest "}
	if err := cfg.Validate(); err != nil || cfg.Network != "BTCTEST" || cfg.BaseURL != blockio.DefaultBaseURL || cfg.Timeout != blockio.DefaultTimeout {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	cfg := blockio.Config{APIKey: "key-1234-5678", PIN: "pin-secret", Network: "BTC"}
	j, _ := json.Marshal(cfg)
	y, _ := yaml.Marshal(cfg)
	for _, shown := range []string{fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.APIKey), string(j), string(y)} {
		if strings.Contains(shown, "key-1234") || strings.Contains(shown, "pin-secret") || !strings.Contains(shown, "[redacted]") {
			t.Fatalf("secret shown: %s", shown)
		}
	}
	var back blockio.Config
	if err := yaml.Unmarshal([]byte("api_key: abc\npin: \"1234\"\nnetwork: BTC\n"), &back); err != nil || back.APIKey.Reveal() != "abc" || back.PIN.Reveal() != "1234" {
		t.Fatalf("yaml: %+v %v", back, err)
	}
}

func TestAPIKeyOnlyInBody(t *testing.T) {
	t.Parallel()
	s, b := newFixture(t, blockiotest.Options{})
	ctx := ctxT(t)
	if _, err := b.Height(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewAddress(ctx); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if len(calls) == 0 {
		t.Fatal("no calls")
	}
	for _, c := range calls {
		if !c.HasKey || strings.Contains(c.Query, s.APIKey()) || strings.Contains(c.Path, s.APIKey()) || c.Query != "" {
			t.Fatalf("call %+v: the key must be in the body only", c)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)

	t.Run("Down", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		addr, err := b.NewAddress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.SetDown(true)
		for name, call := range map[string]func() error{
			"height":      func() error { _, err := b.Height(ctx); return err },
			"transaction": func() error { _, err := b.Transaction(ctx, s.Pay(addr, 50_000)); return err },
			"new address": func() error { _, err := b.NewAddress(ctx); return err },
			"since":       func() error { _, err := b.SinceBlock(ctx, ""); return err },
			"send":        func() error { _, err := b.Send(ctx, s.ExternalAddress(), 50_000, false); return err },
		} {
			if err := call(); !errors.Is(err, chainsync.ErrUnavailable) {
				t.Errorf("%s while down: %v, want ErrUnavailable", name, err)
			}
		}
		if n := len(s.Submitted()); n != 0 {
			t.Fatalf("%d sends while down", n)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		s := blockiotest.New(t, blockiotest.Options{})
		cfg := s.Config()
		s.Close()
		b := mustBackend(t, cfg, blockiotest.Signer{})
		if _, err := b.Send(ctx, "2MxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxX", 50_000, false); !errors.Is(err, chainsync.ErrUnavailable) {
			t.Fatalf("send to a closed server: %v", err)
		}
		if _, err := b.Height(ctx); !errors.Is(err, chainsync.ErrUnavailable) {
			t.Fatalf("height from a closed server: %v", err)
		}
	})

	t.Run("InvalidKeyIsRedacted", func(t *testing.T) {
		t.Parallel()
		s := blockiotest.New(t, blockiotest.Options{})
		cfg := s.Config()
		cfg.APIKey = "wrong-key-abcd-1234"
		b := mustBackend(t, cfg, blockiotest.Signer{})
		_, err := b.Height(ctx)
		if !errors.Is(err, chainsync.ErrUnavailable) {
			t.Fatalf("wrong key: %v, want ErrUnavailable", err)
		}
		var api *blockio.APIError
		if !errors.As(err, &api) || !strings.Contains(api.Message, "API Key invalid") {
			t.Fatalf("wrong key: %v, want block.io's message", err)
		}

		// block.io echoing the key (or the PIN) must not leak it.
		s2 := blockiotest.New(t, blockiotest.Options{APIKey: "echo-key-9999-0000", PIN: "echo-pin-777"})
		b2 := mustBackend(t, s2.Config(), blockiotest.Signer{})
		s2.FailNext("get_new_address", http.StatusBadRequest, "bad request with api_key=echo-key-9999-0000 and pin echo-pin-777")
		_, err = b2.NewAddress(ctx)
		if err == nil || strings.Contains(err.Error(), "echo-key-9999-0000") || strings.Contains(err.Error(), "echo-pin-777") || !strings.Contains(err.Error(), "[redacted]") {
			t.Fatalf("error leaks a secret: %v", err)
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		s.FailNext("get_transactions", http.StatusTooManyRequests, "Too many requests, slow down.")
		if _, err := b.Height(ctx); !errors.Is(err, chainsync.ErrUnavailable) {
			t.Fatalf("rate limited: %v", err)
		}
	})

	t.Run("UnknownTx", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		addr, err := b.NewAddress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		txid := s.Pay(addr, 9_000)
		if _, err := b.Transaction(ctx, "not-a-txid"); !errors.Is(err, chainsync.ErrTxNotFound) {
			t.Fatalf("invalid txid: %v", err)
		}
		if _, err := b.Transaction(ctx, strings.Repeat("ab", 32)); !errors.Is(err, chainsync.ErrTxNotFound) {
			t.Fatalf("unknown txid: %v", err)
		}
		// A refusal that does not say "unknown" must not pass for it (the
		// ledger reverses deposits of transactions not found).
		s.FailNext("get_raw_transaction", http.StatusOK, "An unexpected error occurred.")
		if _, err := b.Transaction(ctx, txid); !errors.Is(err, chainsync.ErrUnavailable) || errors.Is(err, chainsync.ErrTxNotFound) {
			t.Fatalf("odd refusal: %v, want ErrUnavailable", err)
		}
		if tx, err := b.Transaction(ctx, txid); err != nil || len(tx.Received) != 1 {
			t.Fatalf("after the refusal: %+v, %v", tx, err)
		}
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		for name, send := range map[string]func() error{
			"below minimum": func() error { _, err := b.Send(ctx, s.ExternalAddress(), 1, false); return err },
			"zero":          func() error { _, err := b.Send(ctx, s.ExternalAddress(), 0, false); return err },
			"fee eats it":   func() error { _, err := b.Send(ctx, s.ExternalAddress(), s.Fee(), true); return err },
			"list address":  func() error { _, err := b.Send(ctx, "a,b", 50_000, false); return err },
			"too much, fee": func() error { _, err := b.Send(ctx, s.ExternalAddress(), 1<<50, true); return err },
		} {
			if err := send(); !errors.Is(err, chainsync.ErrRejected) {
				t.Errorf("%s: %v, want ErrRejected", name, err)
			}
		}
		if n := len(s.Submitted()); n != 0 {
			t.Fatalf("%d rejected sends were submitted", n)
		}
	})

	t.Run("TimeoutAfterSubmitIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		s := blockiotest.New(t, blockiotest.Options{})
		cfg := s.Config()
		cfg.Timeout = 500 * time.Millisecond
		b := mustBackend(t, cfg, blockiotest.Signer{})
		s.HangSubmit(true)
		_, err := b.Send(ctx, s.ExternalAddress(), 50_000, false)
		if !errors.Is(err, chainsync.ErrAmbiguous) {
			t.Fatalf("hung submit: %v, want ErrAmbiguous", err)
		}
		if n := len(s.Submitted()); n != 1 {
			t.Fatalf("%d broadcasts, want 1 (the ambiguous one)", n)
		}
	})

	t.Run("FailAfterSubmitIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		s.FailNext("submit_transaction", http.StatusInternalServerError, "Internal error, please contact support.")
		if _, err := b.Send(ctx, s.ExternalAddress(), 50_000, false); !errors.Is(err, chainsync.ErrAmbiguous) {
			t.Fatalf("failed submit: %v, want ErrAmbiguous", err)
		}
	})

	t.Run("Signer", func(t *testing.T) {
		t.Parallel()
		s := blockiotest.New(t, blockiotest.Options{})
		// nil: the PINSigner, which cannot decrypt the simulation's
		// stand-in user key (nor sign without a PIN).
		_, err := mustBackend(t, s.Config(), nil).Send(ctx, s.ExternalAddress(), 50_000, false)
		if !errors.Is(err, blockio.ErrWrongPIN) || !errors.Is(err, chainsync.ErrUnavailable) || strings.Contains(err.Error(), s.PIN()) {
			t.Fatalf("default signer: %v", err)
		}
		noPIN := s.Config()
		noPIN.PIN = ""
		if _, err := mustBackend(t, noPIN, nil).Send(ctx, s.ExternalAddress(), 50_000, false); !errors.Is(err, chainsync.ErrUnavailable) {
			t.Fatalf("no PIN: %v", err)
		}
		cfg := s.Config()
		cfg.PIN = "wrong-pin-5555"
		_, err = mustBackend(t, cfg, blockiotest.Signer{}).Send(ctx, s.ExternalAddress(), 50_000, false)
		if !errors.Is(err, chainsync.ErrUnavailable) || strings.Contains(err.Error(), "wrong-pin-5555") {
			t.Fatalf("wrong PIN: %v", err)
		}
		if n := len(s.Submitted()); n != 0 {
			t.Fatalf("%d unsigned sends submitted", n)
		}
	})

	t.Run("TamperedPrepareRejected", func(t *testing.T) {
		t.Parallel()
		s, b := newFixture(t, blockiotest.Options{})
		thief := s.ExternalAddress()
		for name, tamper := range map[string]func(*blockio.PreparedTx){
			"recipient": func(p *blockio.PreparedTx) { p.Outputs[0].ReceivingAddress = thief },
			"amount":    func(p *blockio.PreparedTx) { p.Outputs[0].OutputValue = "0.01000000" },
			"change":    func(p *blockio.PreparedTx) { p.Outputs[1].ReceivingAddress = thief },
			"extra output": func(p *blockio.PreparedTx) {
				p.Outputs = append(p.Outputs, blockio.PreparedOutput{OutputIndex: 2, OutputCategory: blockio.CategoryBlockioFee, OutputValue: "0.00001000", ReceivingAddress: thief})
			},
			"network": func(p *blockio.PreparedTx) { p.Network = "BTC" },
		} {
			s.TamperNextPrepare(tamper)
			if _, err := b.Send(ctx, s.ExternalAddress(), 50_000, false); !errors.Is(err, chainsync.ErrRejected) {
				t.Errorf("%s tampered: %v, want ErrRejected", name, err)
			}
		}
		if n := len(s.Submitted()); n != 0 {
			t.Fatalf("%d tampered sends submitted", n)
		}
	})
}

func TestSendSubtractFee(t *testing.T) {
	t.Parallel()
	s, b := newFixture(t, blockiotest.Options{Fee: 12_345})
	ctx := ctxT(t)
	to := s.ExternalAddress()
	sent, err := b.Send(ctx, to, 1_000_000, true)
	if err != nil {
		t.Fatal(err)
	}
	if sent.Fee != 12_345 {
		t.Fatalf("fee %d", sent.Fee)
	}
	outs := s.Outputs(sent.TxID)
	if i := slices.IndexFunc(outs, func(o blockiotest.Output) bool { return o.Address == to }); i < 0 || outs[i].Amount != 1_000_000-12_345 {
		t.Fatalf("outputs %+v, want %d to %s", outs, 1_000_000-12_345, to)
	}
	tx, err := b.Transaction(ctx, sent.TxID)
	if err != nil || tx.Fee != sent.Fee || len(tx.Received) != 0 {
		t.Fatalf("sent tx %+v, %v", tx, err)
	}
}

func TestHeightWithoutHistory(t *testing.T) {
	t.Parallel()
	s, b := newFixture(t, blockiotest.Options{Funding: -1})
	ctx := ctxT(t)
	if _, err := b.Height(ctx); !errors.Is(err, blockio.ErrNoHeight) || !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("height of an empty wallet: %v", err)
	}
	since, err := b.SinceBlock(ctx, "")
	if err != nil || len(since.TxIDs) != 0 || since.LastBlock != "" {
		t.Fatalf("since of an empty wallet: %+v, %v", since, err)
	}
	addr, _ := b.NewAddress(ctx)
	txid := s.Pay(addr, 70_000)
	if since, err = b.SinceBlock(ctx, ""); err != nil || !slices.Contains(since.TxIDs, txid) || since.LastBlock != "" {
		t.Fatalf("since with a mempool tx only: %+v, %v", since, err)
	}
	s.Mine(2)
	h, err := b.Height(ctx)
	if err != nil || h != s.Height() {
		t.Fatalf("height %d, %v; want %d", h, err, s.Height())
	}
}

func TestSinceBlockPagingAndRestart(t *testing.T) {
	t.Parallel()
	s, b := newFixture(t, blockiotest.Options{})
	ctx := ctxT(t)
	addr, err := b.NewAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for range 2*blockiotest.PageSize + 5 {
		first = append(first, s.Pay(addr, 10_000))
	}
	all, err := b.SinceBlock(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range first {
		if !slices.Contains(all.TxIDs, id) {
			t.Fatalf("since genesis misses %s (%d listed)", id, len(all.TxIDs))
		}
	}
	if funding := s.BlockHash(s.Height() - 5); all.LastBlock != funding {
		t.Fatalf("last block %s, want the funding block %s", all.LastBlock, funding)
	}

	s.Mine(1)
	var second []string
	for range blockiotest.PageSize + 3 {
		second = append(second, s.Pay(addr, 20_000))
	}
	sent, err := b.Send(ctx, s.ExternalAddress(), 30_000, false)
	if err != nil {
		t.Fatal(err)
	}
	later, err := b.SinceBlock(ctx, all.LastBlock)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(slices.Clone(first), second...), sent.TxID)
	slices.Sort(want)
	got := slices.Sorted(slices.Values(later.TxIDs))
	if !slices.Equal(got, want) {
		t.Fatalf("since the funding block: %d txids, want %d (the mined ones, the new ones, the send)", len(got), len(want))
	}
	if later.LastBlock != s.BlockHash(s.Height()) {
		t.Fatalf("last block %s, want %s", later.LastBlock, s.BlockHash(s.Height()))
	}

	// A backend that does not remember the block (a restart) finds it.
	fresh := mustBackend(t, s.Config(), blockiotest.Signer{})
	again, err := fresh.SinceBlock(ctx, later.LastBlock)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(again.TxIDs); n != len(second)+1 {
		t.Fatalf("after a restart: %d txids, want %d (the mempool)", n, len(second)+1)
	}
	unknown, err := fresh.SinceBlock(ctx, strings.Repeat("0", 64))
	if err != nil || len(unknown.TxIDs) != len(first)+len(second)+2 {
		t.Fatalf("unknown block: %d txids, %v; want everything", len(unknown.TxIDs), err)
	}
	if _, err := fresh.SinceBlock(ctx, "nope"); err == nil {
		t.Fatal("a malformed block hash was accepted")
	}
}

func TestTransactionSeesAddressesOfOtherClients(t *testing.T) {
	t.Parallel()
	s, b := newFixture(t, blockiotest.Options{})
	ctx := ctxT(t)
	mine, err := b.NewAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tx, err := b.Transaction(ctx, s.Pay(mine, 5_000)); err != nil || len(tx.Received) != 1 { // loads the wallet's addresses
		t.Fatalf("deposit %+v, %v", tx, err)
	}
	other := s.NewAddress() // made by another client of the account
	txid := s.Pay(other, 123_456_789)
	tx, err := b.Transaction(ctx, txid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tx.Received) != 1 || tx.Received[0] != (chainsync.Output{Vout: 0, Address: other, Amount: 123_456_789}) {
		t.Fatalf("received %+v", tx.Received)
	}
}
