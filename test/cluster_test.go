package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// cluster is N `coinledger serve` processes on one Postgres: the event
// store and the read models (each a fresh schema) are shared by all; each
// process has its own data directory, listen and walletnotify ports and
// instance id (COINLEDGER_INSTANCE_ID). One log needs one sealing key, one
// token key and one audit keyring, so those are shared too. A process can
// be killed (SIGKILL) and restarted on the same port and data directory.
type cluster struct {
	t             *testing.T
	store, models string // Postgres URLs
	keyring       string // the shared audit keyring file
	env           []string
	nodes         []*instance
	admin         *client // the admin, on the first instance
}

// instance is one member of a cluster, across its restarts.
type instance struct {
	id      string
	dataDir string
	listen  string
	mu      sync.Mutex
	srv     *Server   // the current process
	lives   []*Server // every process it ran, oldest first
	c       *client   // the admin, on this instance
	exitErr sync.Once // reports the process's exit once
}

// startCluster starts n instances on the event store and read models at
// the two Postgres URLs, with extra environment for every instance. The
// first starts alone (it bootstraps the admin), then the others; it
// returns once every instance answers /readyz.
func startCluster(t *testing.T, n int, store, models string, env ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	cl := &cluster{t: t, store: store, models: models, keyring: filepath.Join(dir, "audit-keys.json")}
	cl.env = append([]string{"COINLEDGER_EVENT_STORE=" + store, "COINLEDGER_READ_MODELS=" + models,
		"COINLEDGER_SEAL_KEY=0123456789abcdef0123456789abcdef", "COINLEDGER_JWT_SECRET=jwt-secret-jwt-secret-jwt-secret-0123",
		"COINLEDGER_AUDIT_KEY_FILE=" + cl.keyring,
		"COINLEDGER_ADMIN_PASSWORD=" + adminPassword, "COINLEDGER_BCRYPT_COST=4"}, env...)
	for i := range n {
		in := &instance{id: fmt.Sprintf("i%d", i+1), dataDir: filepath.Join(dir, fmt.Sprintf("data-%d", i+1)), listen: freePort(t)}
		if err := os.Mkdir(in.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		cl.nodes = append(cl.nodes, in)
	}
	for i := range cl.nodes {
		cl.start(i)
		if i == 0 {
			cl.admin = newClient(t, cl.nodes[0].srv)
			cl.admin.login("admin", adminPassword)
		}
		cl.nodes[i].c = cl.clientOn(i)
	}
	for i := range cl.nodes {
		cl.waitReady(i, 60*time.Second)
	}
	return cl
}

// start runs instance i's process and waits until it answers /healthz.
func (cl *cluster) start(i int) {
	cl.t.Helper()
	in := cl.nodes[i]
	env := append(slices.Clone(cl.env), "COINLEDGER_INSTANCE_ID="+in.id, "COINLEDGER_LISTEN="+in.listen)
	s := StartServer(cl.t, in.dataDir, env...)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.srv = s
	in.lives = append(in.lives, s)
}

// clientOn returns a client of instance i logged in as the cluster's
// admin (the token is good on every instance: one token key).
func (cl *cluster) clientOn(i int) *client {
	c := newClient(cl.t, &Server{URL: "http://" + cl.nodes[i].listen})
	c.token = cl.admin.token
	return c
}

// waitReady waits until instance i answers /readyz with 200.
func (cl *cluster) waitReady(i int, within time.Duration) {
	cl.t.Helper()
	url := "http://" + cl.nodes[i].listen + "/readyz"
	c := &http.Client{Timeout: 2 * time.Second}
	last := ""
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if !cl.up(i) {
			cl.t.Fatalf("instance %s exited before it was ready:\n%s", cl.nodes[i].id, cl.nodes[i].log())
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("instance %s not ready within %v: %s", cl.nodes[i].id, within, last)
		}
	}
}

// kill stops instance i with SIGKILL.
func (cl *cluster) kill(i int) {
	in := cl.nodes[i]
	in.mu.Lock()
	s := in.srv
	in.srv = nil
	in.mu.Unlock()
	if s != nil {
		s.Kill()
	}
}

// restart starts instance i again (same id, port and data directory) and
// waits until it is ready.
func (cl *cluster) restart(i int) {
	cl.t.Helper()
	cl.start(i)
	cl.waitReady(i, 60*time.Second)
}

// proc returns instance i's current process (nil once killed) and
// whether it has exited.
func (cl *cluster) proc(i int) (*Server, bool) {
	in := cl.nodes[i]
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.srv == nil {
		return nil, false
	}
	select {
	case <-in.srv.exited:
		return in.srv, true
	default:
		return in.srv, false
	}
}

// up tells whether instance i's process runs (it was not killed and has
// not exited).
func (cl *cluster) up(i int) bool {
	s, exited := cl.proc(i)
	return s != nil && !exited
}

// running is the index of a running instance.
func (cl *cluster) running() int {
	for i := range cl.nodes {
		if cl.up(i) {
			return i
		}
	}
	cl.t.Fatal("no instance runs")
	return -1
}

// exited names the instances whose process exited without being killed.
func (cl *cluster) exited() []string {
	var out []string
	for i, in := range cl.nodes {
		if cl.exitedByItself(i) {
			out = append(out, in.id)
		}
	}
	return out
}

// exitedByItself tells whether instance i's process exited without being
// killed.
func (cl *cluster) exitedByItself(i int) bool {
	s, exited := cl.proc(i)
	return s != nil && exited
}

// reportExit fails the test, once per instance, with the end of the log of
// instance i, whose process exited without being killed.
func (cl *cluster) reportExit(i int) {
	in := cl.nodes[i]
	s, _ := cl.proc(i)
	if s == nil {
		return
	}
	in.exitErr.Do(func() {
		log := s.Log()
		if len(log) > 3000 {
			log = "…" + log[len(log)-3000:]
		}
		cl.t.Errorf("instance %s exited by itself:\n%s", in.id, log)
	})
}

// log is everything the instance's processes printed, life by life.
func (in *instance) log() string {
	in.mu.Lock()
	lives := slices.Clone(in.lives)
	in.mu.Unlock()
	var b strings.Builder
	for n, s := range lives {
		fmt.Fprintf(&b, "--- %s, life %d ---\n%s", in.id, n+1, s.Log())
	}
	return b.String()
}

// pick returns instance n modulo the cluster's size (the client-side round
// robin), and other a random instance other than i.
func (cl *cluster) pick(n int) int { return n % len(cl.nodes) }

func (cl *cluster) other(i int) int {
	if len(cl.nodes) == 1 {
		return i
	}
	return (i + 1 + rand.IntN(len(cl.nodes)-1)) % len(cl.nodes)
}

// instanceJSON is an instance's line in /api/v1/status.
type instanceJSON struct {
	ID        string
	Version   string
	Roles     []string
	Heartbeat string
}

// roles reads which roles each running instance says it holds, asking
// each itself (its "instance" line in /status). Instances down or not
// answering within timeout are left out.
func (cl *cluster) roles(timeout time.Duration) map[string][]string {
	held := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, in := range cl.nodes {
		if !cl.up(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			st, err := in.c.statusCtx(ctx)
			if err != nil || st.Instance.ID == "" {
				return
			}
			if st.Instance.ID != in.id {
				cl.t.Errorf("instance %s answers /status as %q", in.id, st.Instance.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range st.Instance.Roles {
				held[r] = append(held[r], in.id)
			}
		}()
	}
	wg.Wait()
	for _, ids := range held {
		slices.Sort(ids)
	}
	return held
}

// holder is the index of the running instance that holds role, -1 if none
// says so.
func (cl *cluster) holder(role string) int {
	for _, id := range cl.roles(2 * time.Second)[role] {
		for i, in := range cl.nodes {
			if in.id == id {
				return i
			}
		}
	}
	return -1
}
