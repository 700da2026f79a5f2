package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// quickStart returns the shell code of README.md's quick start: the
// indented blocks of its "## Quick start" section, in order.
func quickStart(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Quick start")
	if start < 0 {
		t.Fatal("README.md has no Quick start section")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var code []string
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "    "); ok {
			code = append(code, rest)
		} else if len(code) > 0 && code[len(code)-1] != "" {
			code = append(code, "") // a block ended
		}
	}
	return strings.Join(code, "\n")
}

// TestREADMEQuickStart runs README.md's quick start as it is written (only
// the port is the test server's) against the built binary, started as the
// README's run command starts it: in the directory the commands run in,
// no admin password set, so the quick start reads the generated one. curl
// is made to fail on an HTTP error and the shell on any failure: every
// command must succeed, and the answers show what the comments promise.
func TestREADMEQuickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const run = "go build -o bin/coinledger ./cmd/coinledger && bin/coinledger serve"
	if !strings.Contains(string(readme), run) {
		t.Fatalf("README.md's run command is not %q any more: update this test", run)
	}
	dir := t.TempDir()
	s := StartServer(t, filepath.Join(dir, "data"), "COINLEDGER_ADMIN_PASSWORD=", "COINLEDGER_BCRYPT_COST=4")
	told := func() bool {
		return strings.Contains(s.Log(), "docs="+s.URL+"/docs") && strings.Contains(s.Log(), "admin-password")
	}
	for deadline := time.Now().Add(5 * time.Second); !told() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // the log is written in batches
	}
	if !told() {
		t.Errorf("the start-up lines do not say where the docs are and how to log in:\n%s", s.Log())
	}
	code := strings.ReplaceAll(quickStart(t), "127.0.0.1:8080", strings.TrimPrefix(s.URL, "http://"))
	script := "set -euo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\n" + code
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COINLEDGER_ADMIN_PASSWORD=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"name":"alice","balance":{"available":"0.75000000"`, // after the transfer
		`"account":"alice","position":`,                      // balance?at=P ...
		`"total":"1.00000000"`,                               // ... before the transfer
		`"status":"confirmed"`,                               // the simulated deposit
		`"status":"requested"`,                               // the withdrawal
		`"price":"65100"`,                                    // the history
		`{"deliveries":[`,                                    // the alert's delivery log
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the quick start's output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "login failed") {
		t.Errorf("the quick start could not log in:\n%s", out)
	}
}
