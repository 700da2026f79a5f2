package redisnotify_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/redisnotify"
)

const txid = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

func txidN(n int) string { return fmt.Sprintf("%064x", 0xbeef0000+n) }

// redisAddr is the test Redis (COINLEDGER_TEST_REDIS_ADDR, set by
// test/run.sh): missing, the test fails in CI and is skipped elsewhere.
func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("COINLEDGER_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("COINLEDGER_TEST_REDIS_ADDR is not set (test/run.sh starts Redis)")
		}
		t.Skip("COINLEDGER_TEST_REDIS_ADDR is not set; run test/run.sh")
	}
	return addr
}

var channelSeq atomic.Int64

// channel is a channel no other test uses.
func channel(t *testing.T) string {
	return fmt.Sprintf("coinledger-test-%s-%d-%d", t.Name(), os.Getpid(), channelSeq.Add(1))
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type source struct {
	got  chan walletnotify.Notification
	logs *syncBuffer
	stop func() time.Duration
}

// start runs a source for cfg until the test ends.
func start(t *testing.T, cfg redisnotify.Config) *source {
	t.Helper()
	s := &source{got: make(chan walletnotify.Notification, 100), logs: &syncBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sink := func(_ context.Context, n walletnotify.Notification) error {
		s.got <- n
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- redisnotify.New(cfg, sink).Run(ctx) }()
	var once sync.Once
	var took time.Duration
	s.stop = func() time.Duration {
		once.Do(func() {
			begin := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5 s of cancel")
			}
			took = time.Since(begin)
		})
		return took
	}
	t.Cleanup(func() { s.stop() })
	return s
}

func client(t *testing.T, addr, password string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// publish publishes payload once somebody listens on ch (a subscription
// is not confirmed to the subscriber's side before Redis counts it).
func publish(t *testing.T, rdb *redis.Client, ch, payload string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := rdb.Publish(context.Background(), ch, payload).Result()
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %q on %s: %d receivers, %v", payload, ch, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *source) expect(t *testing.T, coin, txid string) {
	t.Helper()
	select {
	case n := <-s.got:
		if want := (walletnotify.Notification{Coin: coin, TxID: txid, Source: "redis"}); n != want {
			t.Fatalf("got %+v, want %+v", n, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s %s not notified within 5 s; logs:\n%s", coin, txid, s.logs)
	}
}

func TestReceives(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	ch := channel(t)
	s := start(t, redisnotify.Config{Addr: addr, Channel: ch, Coin: "BTC"})
	rdb := client(t, addr, "")

	publish(t, rdb, ch, txid)
	s.expect(t, "BTC", txid)
	publish(t, rdb, ch, " "+strings.ToUpper(txidN(1))+"\n")
	s.expect(t, "BTC", txidN(1))

	// Malformed messages are dropped; the next good one comes through.
	for _, bad := range []string{"", "foobar", txid[1:], "{", `{"txid":"nope","coin":"BTC"}`, `{"coin":"LTC"}`, strings.Repeat("a", 2000)} {
		publish(t, rdb, ch, bad)
	}
	publish(t, rdb, ch, txidN(2))
	s.expect(t, "BTC", txidN(2))
	if n := strings.Count(s.logs.String(), "walletnotify malformed txid dropped"); n != 7 {
		t.Errorf("%d malformed messages logged, want 7", n)
	}

	// JSON, with and without a coin.
	publish(t, rdb, ch, `{"txid":"`+txidN(3)+`","coin":"LTC"}`)
	s.expect(t, "LTC", txidN(3))
	publish(t, rdb, ch, `{"txid":"`+strings.ToUpper(txidN(4))+`"}`)
	s.expect(t, "BTC", txidN(4))

	if d := s.stop(); d > 2*time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
	if n, err := rdb.PubSubNumSub(context.Background(), ch).Result(); err != nil || n[ch] != 0 {
		t.Errorf("still subscribed after Run returned: %v %v", n, err)
	}
}

func TestNoCoinConfigured(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	ch := channel(t)
	s := start(t, redisnotify.Config{Addr: addr, Channel: ch})
	rdb := client(t, addr, "")
	publish(t, rdb, ch, txid) // no coin: dropped
	publish(t, rdb, ch, `{"txid":"`+txid+`","coin":"DOGE"}`)
	s.expect(t, "DOGE", txid)
	if !strings.Contains(s.logs.String(), "no coin") {
		t.Errorf("plain txid without a coin not logged as such:\n%s", s.logs)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	ch := channel(t)
	s := start(t, redisnotify.Config{URL: redisnotify.Secret("redis://" + addr + "/3"), Channel: ch, Coin: "BTC"})
	publish(t, client(t, addr, ""), ch, txid) // pubsub ignores the db
	s.expect(t, "BTC", txid)
	if !strings.Contains(s.logs.String(), "db=3") {
		t.Errorf("db from the URL not used:\n%s", s.logs)
	}
}

// redisServer is a redis-server of the test's own, to kill and restart.
type redisServer struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	addr string
}

func startRedisServer(t *testing.T, password string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found (test/run.sh installs it)")
		}
		t.Skip("redis-server not found")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: []string{
		bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--requirepass", password,
	}}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server not listening on %s: %v", r.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func TestSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	const password = "s3cret-pw-xyzzy"
	srv := startRedisServer(t, password)
	ch := channel(t)
	s := start(t, redisnotify.Config{Addr: srv.addr, Password: password, Channel: ch, Coin: "BTC"})
	rdb := client(t, srv.addr, password)

	publish(t, rdb, ch, txidN(1))
	s.expect(t, "BTC", txidN(1))

	srv.kill()
	time.Sleep(300 * time.Millisecond) // the source notices and retries a few times
	srv.start()

	publish(t, rdb, ch, txidN(2))
	s.expect(t, "BTC", txidN(2))
	logs := s.logs.String()
	for _, want := range []string{"walletnotify redis unavailable", "walletnotify redis resubscribed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("%q not logged:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, password) {
		t.Errorf("password logged:\n%s", logs)
	}
}

func TestWrongPasswordRetriedAndNotLogged(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, "right-password")
	s := start(t, redisnotify.Config{Addr: srv.addr, Password: "wrong-password-123", Channel: channel(t), Coin: "BTC"})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.logs.String(), "walletnotify redis unavailable") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged:\n%s", s.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := s.stop(); d > 2*time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
	if logs := s.logs.String(); strings.Contains(logs, "wrong-password-123") {
		t.Errorf("password logged:\n%s", logs)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	secret := redisnotify.Secret("hunter2")
	cfg := redisnotify.Config{Password: secret, URL: "redis://u:hunter2@h:1"}
	for _, s := range []string{fmt.Sprint(secret), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
	for _, c := range []redisnotify.Config{
		{Addr: "nope"},
		{URL: "http://h:1"},
		{URL: "redis://u:hunter2@h:1", Addr: "h:1"},
		{URL: "redis://u:hunter2@h:1/%zz"},
		{DB: -1},
		{PingInterval: -time.Second},
	} {
		err := c.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) accepted", c)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Validate error shows the password: %v", err)
		}
		if err := redisnotify.New(c, nil).Run(t.Context()); err == nil {
			t.Errorf("Run(%+v) accepted", c)
		}
	}
	if err := (redisnotify.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// blackhole forwards TCP connections to a target until freeze, after
// which the connections open then swallow everything (a silent network
// partition); later connections work.
type blackhole struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen []*atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, nil)
			conns.Store(up, nil)
			frozen := new(atomic.Bool)
			b.mu.Lock()
			b.frozen = append(b.frozen, frozen)
			b.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := src.Read(buf)
					if err != nil {
						dst.Close()
						src.Close()
						return
					}
					if !frozen.Load() {
						_, _ = dst.Write(buf[:n])
					}
				}
			}
			wg.Add(2)
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return b
}

func (b *blackhole) freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.frozen {
		f.Store(true)
	}
}

func TestSilentConnectionReplaced(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	hole := newBlackhole(t, addr)
	ch := channel(t)
	s := start(t, redisnotify.Config{Addr: hole.ln.Addr().String(), Channel: ch, Coin: "BTC", PingInterval: 100 * time.Millisecond})
	rdb := client(t, addr, "")
	publish(t, rdb, ch, txidN(1))
	s.expect(t, "BTC", txidN(1))

	hole.freeze()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.logs.String(), "walletnotify redis resubscribed") {
		if time.Now().After(deadline) {
			t.Fatalf("silent connection not replaced:\n%s", s.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(s.logs.String(), "walletnotify redis unresponsive, resubscribing") {
		t.Errorf("unresponsive connection not logged:\n%s", s.logs)
	}
	publish(t, rdb, ch, txidN(2))
	s.expect(t, "BTC", txidN(2))
}
