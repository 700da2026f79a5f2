package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// benchTransfers measures internal transfers over HTTP against the real
// service, in-process on loopback with embedded durable stores: the default
// configuration (group commit, batched wallet writer) against a baseline of
// the same service committing once per request, in the same run.
func benchTransfers(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench transfers", flag.ContinueOnError)
	clients := fs.Int("clients", 64, "concurrent HTTP clients")
	total := fs.Int("total", 30_000, "transfers in the measured run")
	baseTotal := fs.Int("baseline-total", 4_000, "transfers in the baseline run")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured run to this file")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("internal transfers over HTTP, %d concurrent clients, durable (fsync per commit):\n", *clients)
	base, err := runTransferLoad(ctx, "baseline: one commit per request", *clients, *baseTotal, sqlite.Options{NoGroupCommit: true}, 1)
	if err != nil {
		return err
	}
	batched, err := runTransferLoad(ctx, "coinledger: group commit, batched wallet", *clients, *total, sqlite.Options{}, 0)
	if err != nil {
		return err
	}
	return report("transfers", base, batched)
}

type loadFigures struct {
	rate     float64
	p50, p99 time.Duration
}

// figuresOf computes and prints a run's rate and latency percentiles from
// the latency of each of its operations (sorted in place).
func figuresOf(name, unit string, lat []time.Duration, elapsed time.Duration) loadFigures {
	slices.Sort(lat)
	f := loadFigures{rate: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	fmt.Printf("  %-42s %6d %-13s %8.0f/s  p50 %6.2f ms  p99 %6.2f ms\n", name, len(lat), unit, f.rate, ms(f.p50), ms(f.p99))
	return f
}

// report prints the ratio of a run to its baseline, then the scenario's
// JSON result line.
func report(scenario string, base, f loadFigures) error {
	fmt.Printf("ratio against the baseline: %.1fx\n", f.rate/base.rate)
	return printResult(benchResult{Scenario: scenario, OpsPerSec: round(f.rate), P99ms: round(ms(f.p99)),
		BaselineOpsPerSec: round(base.rate), Ratio: round(f.rate / base.rate),
		Extra: map[string]float64{"p50_ms": round(ms(f.p50)), "baseline_p99_ms": round(ms(base.p99))}})
}

func runTransferLoad(ctx context.Context, name string, clients, total int, storeOpts sqlite.Options, maxBatch int) (loadFigures, error) {
	dir, err := os.MkdirTemp("", "coinledger-bench-")
	if err != nil {
		return loadFigures{}, err
	}
	defer os.RemoveAll(dir)
	cfg := &Config{DataDir: dir, AdminPassword: "bench-admin-password", BcryptCost: 4}
	cfg.setDefaults()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), storeOpts)
	if err != nil {
		return loadFigures{}, err
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := newService(ctx, cfg, logger, wiring{store: store, maxBatch: maxBatch})
	if err != nil {
		return loadFigures{}, err
	}
	defer svc.close()
	c, stop, err := startBenchService(ctx, svc, clients)
	if err != nil {
		return loadFigures{}, err
	}
	defer stop()
	if err := c.setUp(clients); err != nil {
		return loadFigures{}, fmt.Errorf("%s: set-up: %w", name, err)
	}
	lat, elapsed, err := loadgen.Closed(clients, total/clients*clients, func(w, i int) error {
		status, body, err := c.post("/wallets/bench/transfers",
			map[string]string{"from": fmt.Sprintf("src%d", w), "to": "sink", "amount": "0.00000001"},
			fmt.Sprintf("bench-%d", i))
		if err != nil || status != http.StatusCreated {
			return fmt.Errorf("transfer: %d %s %v", status, body, err)
		}
		return nil
	})
	if err != nil {
		return loadFigures{}, fmt.Errorf("%s: %w", name, err)
	}
	return figuresOf(name, "transfers", lat, elapsed), nil
}

// startCPUProfile writes a CPU profile to path (none when empty) until
// stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startBenchService serves svc on a loopback port and returns a client for
// it; stop ends the service.
func startBenchService(ctx context.Context, svc *service, clients int) (*benchClient, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runService(sctx, svc, ln, HTTPConfig{}) }()
	c := &benchClient{base: "http://" + ln.Addr().String() + "/api/v1",
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}}
	return c, func() { cancel(); <-done }, nil
}

// login logs the bench admin in.
func (c *benchClient) login() error {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.postJSON("/auth/login", map[string]string{"username": "admin", "password": "bench-admin-password"}, http.StatusOK, &tok); err != nil {
		return err
	}
	c.token = tok.AccessToken
	return nil
}

// postJSON posts body and decodes the answer into out when the status is want.
func (c *benchClient) postJSON(path string, body any, want int, out any) error {
	status, b, err := c.post(path, body, "")
	if err != nil || status != want {
		return fmt.Errorf("POST %s: %d %s %v", path, status, b, err)
	}
	return json.Unmarshal(b, out)
}

type benchClient struct {
	base, token string
	http        *http.Client
}

func (c *benchClient) post(path string, body any, key string) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// setUp logs in and creates wallet "bench" with a funded source account per
// client and one sink.
func (c *benchClient) setUp(clients int) error {
	if err := c.login(); err != nil {
		return err
	}
	steps := []struct {
		path string
		body any
		key  string
	}{{"/wallets", map[string]any{"name": "bench", "coin": "BTC", "permissions": []string{"read", "transfer"}}, ""},
		{"/wallets/bench/accounts", map[string]string{"name": "sink"}, ""}}
	for i := 0; i < clients; i++ {
		steps = append(steps,
			struct {
				path string
				body any
				key  string
			}{"/wallets/bench/accounts", map[string]string{"name": fmt.Sprintf("src%d", i)}, ""},
			struct {
				path string
				body any
				key  string
			}{fmt.Sprintf("/wallets/bench/accounts/src%d/imports", i), map[string]string{"amount": "1.00000000", "reason": "bench"}, fmt.Sprintf("fund-%d", i)})
	}
	for _, s := range steps {
		if status, body, err := c.post(s.path, s.body, s.key); err != nil || status != http.StatusCreated {
			return fmt.Errorf("POST %s: %d %s %v", s.path, status, body, err)
		}
	}
	return nil
}
