// Package test holds the end-to-end tests: they build the coinledger binary,
// run it against real stores and talk to it over HTTP, as a client would.
package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coinledger-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "coinledger")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/coinledger")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coinledger:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Server is a running coinledger process.
type Server struct {
	URL     string
	DataDir string
	cmd     *exec.Cmd
	mu      sync.Mutex
	log     strings.Builder
	exited  chan struct{}
}

// Log returns what the process printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartServer runs `coinledger serve` with a fresh data dir (or dataDir if
// given) and extra environment (COINLEDGER_LISTEN there keeps an address;
// by default a free port), and waits until /healthz answers.
func StartServer(t *testing.T, dataDir string, env ...string) *Server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	addr := freePort(t)
	for _, kv := range env { // a restart keeps its address
		if v, ok := strings.CutPrefix(kv, "COINLEDGER_LISTEN="); ok {
			addr = v
		}
	}
	s := &Server{URL: "http://" + addr, DataDir: dataDir, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = append(os.Environ(), "COINLEDGER_LISTEN="+addr, "COINLEDGER_DATA_DIR="+dataDir,
		"COINLEDGER_WALLETNOTIFY_LISTEN="+freePort(t))
	s.cmd.Env = append(s.cmd.Env, env...)
	out, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = s.cmd.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("coinledger exited during start-up:\n%s", s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("coinledger did not answer /healthz within 30s:\n%s", s.Log())
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit.
func (s *Server) Stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("coinledger did not stop within 15s of SIGTERM")
	}
}

// Kill stops the process with SIGKILL: no clean shutdown.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
