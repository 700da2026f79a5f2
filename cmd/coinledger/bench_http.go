package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/eventstore/loadgen"
)

// httpLoad is a bench scenario over the HTTP API: its set-up and its
// operation. op runs as worker w (in open-loop mode, i modulo the clients)
// and i numbers the operation within the run.
type httpLoad struct {
	scenario, unit, title string
	label                 string // this binary's measured run
	setUp                 func(c *benchClient, clients int) error
	op                    func(c *benchClient, w, i int) error
}

// httpBenchOpts are the flags every HTTP bench takes.
type httpBenchOpts struct {
	clients    int
	total      int
	rate       float64
	duration   time.Duration
	against    string
	rounds     int
	cpuProfile string
}

func httpBenchFlags(fs *flag.FlagSet, total int) *httpBenchOpts {
	o := &httpBenchOpts{}
	fs.IntVar(&o.clients, "clients", 64, "concurrent closed-loop HTTP clients (open loop: source accounts)")
	fs.IntVar(&o.total, "total", total, "operations in each measured run")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: offer this many operations per second at a constant arrival rate (0: closed loop)")
	fs.DurationVar(&o.duration, "duration", 0, "open loop: offer load this long (instead of -total operations)")
	fs.StringVar(&o.against, "against", "", "compare with OTHER_BINARY's `serve`, run alternately with this one")
	fs.IntVar(&o.rounds, "rounds", 3, "with -against: rounds, each running this binary then the other")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured server process to this file")
	return o
}

func (o *httpBenchOpts) check() error {
	switch {
	case o.clients < 1:
		return usageError("-clients: want at least 1")
	case o.rate < 0:
		return usageError("-rate: want a positive rate")
	case o.duration != 0 && o.rate == 0:
		return usageError("-duration: only with -rate")
	case o.against != "" && o.rounds < 1:
		return usageError("-rounds: want at least 1")
	case o.against != "" && o.cpuProfile != "":
		return usageError("-cpuprofile: not with -against")
	}
	if o.rate > 0 && o.duration > 0 {
		o.total = int(o.rate * o.duration.Seconds())
	}
	if o.total < o.clients {
		return usageError("-total: want at least one operation per client")
	}
	if o.cpuProfile != "" {
		abs, err := filepath.Abs(o.cpuProfile)
		if err != nil {
			return err
		}
		o.cpuProfile = abs
	}
	return nil
}

// mode describes the load shape for the header line.
func (o *httpBenchOpts) mode() string {
	if o.rate > 0 {
		return fmt.Sprintf("open loop at %.0f/s offered (%d source accounts)", o.rate, o.clients)
	}
	return fmt.Sprintf("%d concurrent clients", o.clients)
}

// run measures load on this binary's server: after a baseline run of
// baseTotal operations on the per-request-commit server (none when 0 or in
// open-loop mode), or alternately against another binary (-against).
func (o *httpBenchOpts) run(ctx context.Context, load httpLoad, baseTotal int) error {
	if o.against != "" {
		return o.compare(ctx, load)
	}
	fmt.Printf("%s, %s, server as its own process:\n", load.title, o.mode())
	var base loadFigures
	if baseTotal > 0 && o.rate == 0 {
		spec, err := thisServer("baseline: one commit per request", true, "")
		if err != nil {
			return err
		}
		closed := *o
		closed.total = baseTotal
		if base, err = closed.measure(ctx, spec, load); err != nil {
			return err
		}
	}
	spec, err := thisServer(load.label, false, o.cpuProfile)
	if err != nil {
		return err
	}
	f, err := o.measure(ctx, spec, load)
	if err != nil {
		return err
	}
	extra := map[string]float64{"p50_ms": round(ms(f.p50))}
	if o.rate > 0 {
		extra["offered_ops_per_sec"] = round(o.rate)
	}
	r := benchResult{Scenario: load.scenario, OpsPerSec: round(f.rate), P99ms: round(ms(f.p99)),
		ServerCPUusPerOp: round(us(f.cpuPerOp)), Extra: extra}
	if base.rate > 0 {
		fmt.Printf("ratio against the baseline: %.1fx\n", f.rate/base.rate)
		r.BaselineOpsPerSec, r.Ratio = round(base.rate), round(f.rate/base.rate)
		extra["baseline_p99_ms"] = round(ms(base.p99))
		extra["baseline_server_cpu_us_per_op"] = round(us(base.cpuPerOp))
	}
	return printResult(r)
}

// runInstances measures load on n servers of this binary sharing an event
// store and read models on the Postgres server at pg, after the same load on
// one server on the same Postgres (the baseline), each run on fresh schemas.
// Every line shows the servers' CPU time per transfer, all servers summed.
func (o *httpBenchOpts) runInstances(ctx context.Context, load httpLoad, n int, pg string) error {
	fmt.Printf("%s, %s, event store and read models in Postgres, each server its own process:\n", load.title, o.mode())
	spec, err := thisServer("", false, o.cpuProfile)
	if err != nil {
		return err
	}
	spec.postgres = pg
	var base loadFigures
	if n > 1 {
		one := spec
		one.label, one.args = "1 instance", []string{"serve"}
		if base, err = o.measure(ctx, one, load); err != nil {
			return err
		}
	}
	spec.label, spec.instances = "1 instance", n
	if n > 1 {
		spec.label = fmt.Sprintf("%d instances, round robin", n)
	}
	f, err := o.measure(ctx, spec, load)
	if err != nil {
		return err
	}
	r := benchResult{Scenario: load.scenario + "_postgres", OpsPerSec: round(f.rate), P99ms: round(ms(f.p99)),
		ServerCPUusPerOp: round(us(f.cpuPerOp)), Extra: map[string]float64{"instances": float64(n), "p50_ms": round(ms(f.p50))}}
	if base.rate > 0 {
		fmt.Printf("%d instances against 1: ops/s %.2fx  p99 %.2fx  server CPU per op %.2fx\n",
			n, f.rate/base.rate, ratio(f.p99, base.p99), ratio(f.cpuPerOp, base.cpuPerOp))
		r.BaselineOpsPerSec, r.Ratio = round(base.rate), round(f.rate/base.rate)
		r.Extra["baseline_p99_ms"] = round(ms(base.p99))
		r.Extra["baseline_server_cpu_us_per_op"] = round(us(base.cpuPerOp))
	}
	r.Extra["conflicts"] = float64(f.conflicts)
	return printResult(r)
}

// compare runs load alternately on this binary's server and on the other
// binary's `serve` for o.rounds rounds, then prints the medians and the
// ratios this/other. The JSON line's baseline is the other binary.
func (o *httpBenchOpts) compare(ctx context.Context, load httpLoad) error {
	this, err := thisServer("this", false, "")
	if err != nil {
		return err
	}
	other := serverSpec{label: "other", binary: o.against, args: []string{"serve"}}
	if _, err := os.Stat(other.binary); err != nil {
		return fmt.Errorf("-against: %w", err)
	}
	fmt.Printf("%s, %s, server as its own process\nthis: %s\nother: %s\n%d rounds, each this then other:\n",
		load.title, o.mode(), this.binary, other.binary, o.rounds)
	var runs [2][]loadFigures
	for r := 1; r <= o.rounds; r++ {
		for k, spec := range []serverSpec{this, other} {
			spec.label = fmt.Sprintf("round %d %s", r, spec.label)
			f, err := o.measure(ctx, spec, load)
			if err != nil {
				return err
			}
			runs[k] = append(runs[k], f)
		}
	}
	a, b := medianOf(runs[0]), medianOf(runs[1])
	fmt.Printf("medians over %d rounds:\n", o.rounds)
	for _, m := range []struct {
		name string
		f    loadFigures
	}{{"this", a}, {"other", b}} {
		fmt.Printf("  %-6s %8.0f %s/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %7.1f µs/op\n",
			m.name, m.f.rate, load.unit, ms(m.f.p50), ms(m.f.p99), us(m.f.cpuPerOp))
	}
	fmt.Printf("this/other: ops/s %.2fx  p99 %.2fx  server CPU per op %.2fx\n",
		a.rate/b.rate, ratio(a.p99, b.p99), ratio(a.cpuPerOp, b.cpuPerOp))
	return printResult(benchResult{Scenario: load.scenario, OpsPerSec: round(a.rate), P99ms: round(ms(a.p99)),
		BaselineOpsPerSec: round(b.rate), Ratio: round(a.rate / b.rate), ServerCPUusPerOp: round(us(a.cpuPerOp)),
		Extra: map[string]float64{
			"rounds": float64(o.rounds), "p50_ms": round(ms(a.p50)),
			"other_p99_ms": round(ms(b.p99)), "other_server_cpu_us_per_op": round(us(b.cpuPerOp)),
			"p99_ratio": round(ratio(a.p99, b.p99)), "server_cpu_ratio": round(ratio(a.cpuPerOp, b.cpuPerOp)),
		}})
}

// medianOf takes the median of each figure separately.
func medianOf(fs []loadFigures) loadFigures {
	med := func(get func(loadFigures) float64) float64 {
		v := make([]float64, len(fs))
		for i, f := range fs {
			v[i] = get(f)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return loadFigures{
		rate:     med(func(f loadFigures) float64 { return f.rate }),
		p50:      time.Duration(med(func(f loadFigures) float64 { return float64(f.p50) })),
		p99:      time.Duration(med(func(f loadFigures) float64 { return float64(f.p99) })),
		cpuPerOp: time.Duration(med(func(f loadFigures) float64 { return float64(f.cpuPerOp) })),
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// measure starts spec's server (spec.instances of them on shared Postgres
// stores with spec.postgres), sets the load up through the API, then runs
// o.total operations (closed loop with o.clients clients, or open loop at
// o.rate; client w talks to server w modulo the servers), reading the
// servers' CPU time just before and after (once the work the operations
// left behind, such as projections, is done), and prints the run's line.
func (o *httpBenchOpts) measure(ctx context.Context, spec serverSpec, load httpLoad) (loadFigures, error) {
	procs, err := startServers(ctx, spec)
	if err != nil {
		return loadFigures{}, err
	}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	logTail := func() string {
		var b strings.Builder
		for _, p := range procs {
			b.WriteString(p.logTail())
		}
		return b.String()
	}
	clients := make([]*benchClient, len(procs))
	for i, p := range procs {
		clients[i] = newBenchClient(p.base, max(o.clients, 1024)/len(procs))
		defer clients[i].http.CloseIdleConnections()
	}
	if err := load.setUp(clients[0], o.clients); err != nil {
		return loadFigures{}, fmt.Errorf("%s: set-up: %w\nserver log: %s", spec.label, err, logTail())
	}
	for i, p := range procs[1:] {
		clients[i+1].token = clients[0].token // one token key
		if err := p.waitFor(ctx, strings.TrimSuffix(p.base, "/api/v1")+"/readyz", time.Minute, func(s int) bool { return s == http.StatusOK }); err != nil {
			return loadFigures{}, fmt.Errorf("%s: instance %d not ready: %w", spec.label, i+2, err)
		}
	}
	cpuTime := func(settled bool) (time.Duration, error) {
		var sum time.Duration
		for _, p := range procs {
			t, err := p.cpuTime()
			if settled {
				t, err = p.settledCPUTime(ctx)
			}
			if err != nil {
				return 0, err
			}
			sum += t
		}
		return sum, nil
	}
	cpu0, err := cpuTime(false)
	if err != nil {
		return loadFigures{}, err
	}
	var (
		lat     []time.Duration
		elapsed time.Duration
	)
	op := func(w, i int) error { return load.op(clients[w%len(clients)], w, i) }
	if o.rate > 0 {
		lat, elapsed, err = loadgen.Open(o.rate, o.total, func(i int) error { return op(i%o.clients, i) })
	} else {
		lat, elapsed, err = loadgen.Closed(o.clients, o.total/o.clients*o.clients, op)
	}
	if err != nil {
		return loadFigures{}, fmt.Errorf("%s: %w\nserver log: %s", spec.label, err, logTail())
	}
	cpu1, err := cpuTime(true)
	if err != nil {
		return loadFigures{}, err
	}
	f := figures(lat, elapsed)
	f.cpuPerOp = (cpu1 - cpu0) / time.Duration(len(lat))
	for _, c := range clients {
		f.conflicts += c.conflicts.Load()
	}
	f.print(spec.label, load.unit, len(lat))
	return f, nil
}

// startServers starts spec.instances servers of spec (at least one), on
// fresh schemas of spec.postgres when set, each with its own instance id;
// the first alone (it bootstraps the admin), then the others. Stopping the
// last one started drops the schemas.
func startServers(ctx context.Context, spec serverSpec) ([]*serverProc, error) {
	n := max(spec.instances, 1)
	var drops []func(context.Context) error
	if spec.postgres != "" {
		store, dropStore, err := freshSchema(spec.postgres, "bench_events")
		if err != nil {
			return nil, err
		}
		models, dropModels, err := freshSchema(spec.postgres, "bench_models")
		if err != nil {
			return nil, err
		}
		drops = append(drops, dropStore, dropModels)
		spec.env = append(slices.Clone(spec.env), "COINLEDGER_EVENT_STORE="+store, "COINLEDGER_READ_MODELS="+models,
			// One log: one sealing key and one token key.
			"COINLEDGER_SEAL_KEY="+benchSecret, "COINLEDGER_JWT_SECRET="+benchSecret)
	}
	dropAll := func() {
		for _, drop := range drops {
			_ = drop(context.WithoutCancel(ctx))
		}
	}
	var procs []*serverProc
	for i := range n {
		s := spec
		s.env = append(slices.Clone(spec.env), fmt.Sprintf("COINLEDGER_INSTANCE_ID=bench-%d", i+1))
		if i > 0 {
			s.args = []string{"serve"} // the profile, if any, is of the first
		}
		p, err := startServer(ctx, s)
		if err != nil {
			for _, p := range procs {
				p.stop()
			}
			dropAll()
			return nil, err
		}
		procs = append(procs, p)
	}
	procs[n-1].onStop = dropAll
	return procs, nil
}

// benchSecret is the sealing and token key the servers of one multi-server
// run share.
const benchSecret = "bench-secret-bench-secret-bench-secret-0123"

type loadFigures struct {
	rate     float64
	p50, p99 time.Duration
	cpuPerOp time.Duration // the server process's CPU time per operation (0: not measured)
	// conflicts counts the answers 409 wrong_expected_version sent again.
	conflicts int64
}

// figures computes a run's rate and latency percentiles from the latency
// of each of its operations (sorted in place).
func figures(lat []time.Duration, elapsed time.Duration) loadFigures {
	slices.Sort(lat)
	return loadFigures{rate: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}

func (f loadFigures) print(name, unit string, n int) {
	fmt.Printf("  %-42s %6d %-13s %8.0f/s  p50 %6.2f ms  p99 %6.2f ms", name, n, unit, f.rate, ms(f.p50), ms(f.p99))
	if f.cpuPerOp > 0 {
		fmt.Printf("  server_cpu_us_per_op %7.1f", us(f.cpuPerOp))
	}
	if f.conflicts > 0 {
		fmt.Printf("  %d conflicts sent again", f.conflicts)
	}
	fmt.Println()
}

// figuresOf computes and prints a run's figures (see figures).
func figuresOf(name, unit string, lat []time.Duration, elapsed time.Duration) loadFigures {
	f := figures(lat, elapsed)
	f.print(name, unit, len(lat))
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

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

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

// startBenchService serves svc in this process on a loopback port and
// returns a client for it; stop ends the service.
func startBenchService(ctx context.Context, svc *service, clients int) (*benchClient, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runService(sctx, svc, ln, HTTPConfig{}) }()
	return newBenchClient("http://"+ln.Addr().String()+"/api/v1", clients), func() { cancel(); <-done }, nil
}

// benchClient talks to the API at base as the bench admin.
type benchClient struct {
	base, token string
	http        *http.Client
	// conflicts counts the answers 409 wrong_expected_version an
	// operation met and sent again (servers sharing a store).
	conflicts atomic.Int64
}

// newBenchClient keeps up to idle connections open to base. It opens at
// most maxConns: beyond, an open-loop run's requests wait for a connection
// (and that wait counts in their latency) rather than exhaust ports and
// file descriptors.
func newBenchClient(base string, idle int) *benchClient {
	const maxConns = 2048
	return &benchClient{base: base, http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: idle, MaxIdleConns: idle, MaxConnsPerHost: max(idle, maxConns)}}}
}

// login logs the bench admin in.
func (c *benchClient) login() error {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.postJSON("/auth/login", map[string]string{"username": "admin", "password": benchAdminPassword}, http.StatusOK, &tok); err != nil {
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

func (c *benchClient) post(path string, body any, key string) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return c.do(req)
}

func (c *benchClient) get(path string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	return c.do(req)
}

func (c *benchClient) do(req *http.Request) (int, []byte, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// setUp logs in and creates, through the API only (so older builds serve
// it too), wallet "bench" with a sink account and a source account per
// client, each funded by an import.
func (c *benchClient) setUp(clients int) error {
	if err := c.login(); err != nil {
		return err
	}
	type step struct {
		path string
		body any
		key  string
	}
	steps := []step{{"/wallets", map[string]any{"name": "bench", "coin": "BTC", "permissions": []string{"read", "transfer"}}, ""},
		{"/wallets/bench/accounts", map[string]string{"name": "sink"}, ""}}
	for i := range clients {
		steps = append(steps,
			step{"/wallets/bench/accounts", map[string]string{"name": fmt.Sprintf("src%d", i)}, ""},
			step{fmt.Sprintf("/wallets/bench/accounts/src%d/imports", i), map[string]string{"amount": "1.00000000", "reason": "bench"}, fmt.Sprintf("fund-%d", i)})
	}
	for _, s := range steps {
		if status, body, err := c.post(s.path, s.body, s.key); err != nil || status != http.StatusCreated {
			return fmt.Errorf("POST %s: %d %s %v", s.path, status, body, err)
		}
	}
	return nil
}
