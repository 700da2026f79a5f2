package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/null"
	"github.com/coinledger/coinledger/adapters/walletnotify/httpnotify"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/wallet"
)

// benchNotify measures walletnotify ingestion end to end on the simulated
// chain: a txid POSTed to the walletnotify listener, through the watermill
// router and the coin's syncer (which asks the backend), to the deposit
// confirmed in the ledger and visible in the read models. Every payment is
// mined before it is notified, so one notification credits one confirmed
// deposit. Each client is a closed loop: it notifies, waits until the
// deposit is visible, then notifies the next, so the latency (notify to
// visible) is the pipeline's, not a queue's. The baseline is one such client.
func benchNotify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench notify", flag.ContinueOnError)
	clients := fs.Int("clients", 32, "concurrent notifying clients")
	total := fs.Int("total", 10_000, "notifications in the measured run")
	baseTotal := fs.Int("baseline-total", 500, "notifications in the baseline run (one client)")
	accounts := fs.Int("accounts", 64, "accounts with a deposit address each")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("walletnotify ingestion to a confirmed deposit visible in the read models, null backend, durable stores:\n")
	base, err := runNotifyLoad(ctx, "baseline: one client", 1, *baseTotal, *accounts)
	if err != nil {
		return err
	}
	f, err := runNotifyLoad(ctx, fmt.Sprintf("%d clients", *clients), *clients, *total, *accounts)
	if err != nil {
		return err
	}
	return report("walletnotify", base, f)
}

func runNotifyLoad(ctx context.Context, name string, clients, total, accounts int) (loadFigures, error) {
	dir, err := os.MkdirTemp("", "coinledger-bench-")
	if err != nil {
		return loadFigures{}, err
	}
	defer os.RemoveAll(dir)
	notifyAddr, err := freeAddr()
	if err != nil {
		return loadFigures{}, err
	}
	cfg := &Config{DataDir: dir, AdminPassword: "bench-admin-password", BcryptCost: 4, WalletnotifyListen: notifyAddr}
	cfg.setDefaults()
	cfg.Walletnotify.Router.DedupeWindow = -1 // every txid is new here
	svc, err := newService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), wiring{})
	if err != nil {
		return loadFigures{}, err
	}
	defer svc.close()
	c, stop, err := startBenchService(ctx, svc, clients)
	if err != nil {
		return loadFigures{}, err
	}
	defer stop()
	syncer, err := svc.chains.Syncer("BTC")
	if err != nil {
		return loadFigures{}, err
	}
	sim := syncer.Backend().(*null.Chain)

	if err := c.setUpDeposits(accounts); err != nil {
		return loadFigures{}, fmt.Errorf("%s: set-up: %w", name, err)
	}
	addresses, err := c.addresses(accounts)
	if err != nil {
		return loadFigures{}, err
	}
	txids := make([]string, total)
	for i := range txids {
		txids[i] = sim.Pay(addresses[i%len(addresses)], 1000+int64(i))
	}
	sim.Mine(1)
	listener := "http://" + notifyAddr

	// Watch the log for the confirmations and signal each once the read
	// models show it.
	head, err := svc.store.Head(ctx)
	if err != nil {
		return loadFigures{}, err
	}
	// wait[i] closes once txids[i]'s deposit is visible; visible is the
	// watcher's own from here on.
	wait := make([]chan struct{}, total)
	visible := make(map[string]chan struct{}, total)
	for i, txid := range txids {
		wait[i] = make(chan struct{})
		visible[txid] = wait[i]
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go svc.store.Subscribe(wctx, head, func(ctx context.Context, events []eventstore.Event) error {
		for _, e := range events {
			if e.Type != ledger.TypeDepositConfirmed {
				continue
			}
			for _, m := range []string{wallet.New().Name(), custody.New().Name()} {
				if err := svc.runner.WaitFor(ctx, m, e.Position); err != nil {
					return err
				}
			}
			var d struct {
				TxID string `json:"txid"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return err
			}
			if ch, ok := visible[d.TxID]; ok {
				close(ch) // each deposit is confirmed once
				delete(visible, d.TxID)
			}
		}
		return nil
	})

	// Each operation: notify, then wait until the deposit is visible.
	lat, elapsed, err := loadgen.Closed(clients, total, func(_, i int) error {
		if err := httpnotify.Post(ctx, c.http, listener, "BTC", txids[i]); err != nil {
			return err
		}
		select {
		case <-wait[i]:
			return nil
		case <-time.After(time.Minute):
			return fmt.Errorf("deposit %s not visible after a minute", txids[i])
		}
	})
	if err != nil {
		return loadFigures{}, fmt.Errorf("%s: notify: %w", name, err)
	}
	return figuresOf(name, "notifications", lat, elapsed), nil
}

// setUpDeposits creates wallet "deposits" (threshold 1) with accounts
// acc0..accN-1.
func (c *benchClient) setUpDeposits(accounts int) error {
	if err := c.login(); err != nil {
		return err
	}
	if status, body, err := c.post("/wallets", map[string]any{"name": "deposits", "coin": "BTC", "confirmations": 1,
		"permissions": []string{"read", "address", "transfer"}}, ""); err != nil || status != http.StatusCreated {
		return fmt.Errorf("create wallet: %d %s %v", status, body, err)
	}
	for i := range accounts {
		if status, body, err := c.post("/wallets/deposits/accounts", map[string]string{"name": fmt.Sprintf("acc%d", i)}, ""); err != nil || status != http.StatusCreated {
			return fmt.Errorf("create account: %d %s %v", status, body, err)
		}
	}
	return nil
}

// addresses gives each account a deposit address.
func (c *benchClient) addresses(accounts int) ([]string, error) {
	out := make([]string, accounts)
	for i := range out {
		var a struct {
			Address string `json:"address"`
		}
		if err := c.postJSON(fmt.Sprintf("/wallets/deposits/accounts/acc%d/addresses", i), nil, http.StatusCreated, &a); err != nil {
			return nil, err
		}
		out[i] = a.Address
	}
	return out, nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
