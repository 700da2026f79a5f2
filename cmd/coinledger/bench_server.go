package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// benchAdminPassword is the admin password of every server a bench starts.
const benchAdminPassword = "bench-admin-password"

// serverSpec names the server process a bench run starts: a binary and its
// arguments (`serve`, or this binary's `bench baseline-server`).
type serverSpec struct {
	label  string // how the bench lines name it
	binary string
	args   []string
	// dataDir, when set, is the data directory to serve, kept after
	// stop; by default a fresh one, removed at stop.
	dataDir string
	// startWait bounds the wait for the server to answer HTTP (default 30 s).
	startWait time.Duration
	// env is extra environment for the server.
	env []string
	// postgres, when set, is the Postgres server a run puts the event
	// store and the read models on, in fresh schemas dropped after it.
	postgres string
	// instances is how many servers a run starts on those shared stores
	// (default 1). A CPU profile is of the first.
	instances int
}

// thisServer is this binary's `serve`; with baseline or a CPU profile, its
// hidden `bench server`, which is `serve` committing once per request
// and/or profiling itself.
func thisServer(label string, baseline bool, cpuProfile string) (serverSpec, error) {
	self, err := os.Executable()
	if err != nil {
		return serverSpec{}, fmt.Errorf("find this binary: %w", err)
	}
	spec := serverSpec{label: label, binary: self, args: []string{"serve"}}
	if baseline || cpuProfile != "" {
		spec.args = []string{"bench", "server", "-baseline=" + strconv.FormatBool(baseline), "-cpuprofile=" + cpuProfile}
	}
	return spec, nil
}

// serverProc is a running server process with a fresh data directory.
type serverProc struct {
	cmd    *exec.Cmd
	dir    string
	base   string // the API's base URL, .../api/v1
	logf   *os.File
	exited chan struct{}
	onStop func() // after the process exited (nil: nothing)
}

// startServer runs spec's server as its own process with embedded stores
// (fsync on; or those of spec.env) in a fresh temporary data directory, the
// bench admin password, cheap bcrypt and free ports, and waits until it
// answers HTTP.
func startServer(ctx context.Context, spec serverSpec) (*serverProc, error) {
	dir, err := os.MkdirTemp("", "coinledger-bench-server-")
	if err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	notify, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	dataDir := spec.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
		if err := os.Mkdir(dataDir, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(spec.binary, spec.args...)
	cmd.Env = append(benchServerEnv(os.Environ()),
		"COINLEDGER_LISTEN="+listen,
		"COINLEDGER_DATA_DIR="+dataDir,
		"COINLEDGER_WALLETNOTIFY_LISTEN="+notify,
		"COINLEDGER_ADMIN_PASSWORD="+benchAdminPassword,
		"COINLEDGER_BCRYPT_COST=4")
	cmd.Env = append(cmd.Env, spec.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &serverProc{cmd: cmd, dir: dir, base: "http://" + listen + "/api/v1", logf: logf, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", spec.binary, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	wait := spec.startWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	if err := p.waitListening(ctx, "http://"+listen+"/healthz", wait); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s %s: %w", spec.binary, strings.Join(spec.args, " "), err)
	}
	return p, nil
}

// benchServerEnv is the bench's environment without the variables that
// would point the server elsewhere than its own embedded stores.
func benchServerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "COINLEDGER_") {
			out = append(out, kv)
		}
	}
	return out
}

// waitListening polls url until the server answers at all (any status:
// older builds may lack the endpoint) or the process exits.
func (p *serverProc) waitListening(ctx context.Context, url string, wait time.Duration) error {
	return p.waitFor(ctx, url, wait, func(int) bool { return true })
}

// waitFor polls url every 20 ms until it answers with a status ok accepts,
// the process exits or wait has passed.
func (p *serverProc) waitFor(ctx context.Context, url string, wait time.Duration, ok func(status int) bool) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(wait)
	for {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("server exited: %s", p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s after %s: %s", url, wait, p.logTail())
		}
	}
}

// logTail returns the end of what the server printed.
func (p *serverProc) logTail() string {
	b, _ := os.ReadFile(p.logf.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// stop ends the server (SIGTERM, then SIGKILL after 15 s) and removes its
// data directory.
func (p *serverProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.logf.Close()
	os.RemoveAll(p.dir)
	if p.onStop != nil {
		p.onStop()
	}
}

// cpuTime is the CPU time (user + system, all threads) the server process
// has used so far, from /proc/PID/stat.
func (p *serverProc) cpuTime() (time.Duration, error) {
	return procCPUTime(p.cmd.Process.Pid)
}

// settledCPUTime is the server's CPU time once it has gone idle: work a
// run left behind (projections catching up, batches being written) counts
// towards the run. It waits for 100 ms without CPU use, 3 s at most.
func (p *serverProc) settledCPUTime(ctx context.Context) (time.Duration, error) {
	last, err := p.cpuTime()
	if err != nil {
		return 0, err
	}
	quiet, deadline := time.Now(), time.Now().Add(3*time.Second)
	for time.Since(quiet) < 100*time.Millisecond && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		now, err := p.cpuTime()
		if err != nil {
			return 0, err
		}
		if now != last {
			last, quiet = now, time.Now()
		}
	}
	return last, nil
}

// procCPUTime reads utime + stime of process pid from /proc/PID/stat.
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields that follow start after the last ')', from field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("server CPU time: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("server CPU time: short /proc stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / time.Duration(clockTicks()), nil
}

// clockTicks is the kernel's USER_HZ (the unit of /proc CPU times), from
// the auxiliary vector's AT_CLKTCK; 100 when it cannot be read.
func clockTicks() uint64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil && len(b)%16 == 0 {
		for i := 0; i+16 <= len(b); i += 16 {
			if binary.NativeEndian.Uint64(b[i:]) == atClkTck {
				if v := binary.NativeEndian.Uint64(b[i+8:]); v > 0 {
					return v
				}
			}
		}
	}
	return 100
}

// benchServer is `coinledger bench server`, started by the benches
// themselves: `serve`, with -baseline committing once per request (no
// group commit in the event store, no batching of wallet commands: the
// baseline the batched service is measured against), with -cpuprofile
// writing a CPU profile of the process until it stops.
func benchServer(ctx context.Context, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("bench server", flag.ContinueOnError)
	baseline := fs.Bool("baseline", false, "commit once per request")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	cfg, _, err := loadConfig("bench server", fs.Args())
	if err != nil {
		return err
	}
	w := wiring{}
	if *baseline {
		path, ok := strings.CutPrefix(cfg.EventStore.Reveal(), "sqlite:")
		if !ok {
			return usageError("bench server -baseline: the event store must be sqlite:PATH")
		}
		store, err := sqlite.Open(ctx, path, sqlite.Options{NoGroupCommit: true})
		if err != nil {
			return err
		}
		defer store.Close()
		w = wiring{store: store, maxBatch: 1}
	}
	logger.Info("bench server", "baseline", *baseline, "cpuprofile", *cpuProfile)
	return serveWith(ctx, logger, cfg, w)
}
