package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/app/users"
)

// TestCLIWhileServerRuns: with the server binary running on the embedded
// store (another process holding its lock), users, events export, audit
// verify, projections status and followers list work through its admin
// API, and events import into the served store is refused with exit 1.
func TestCLIWhileServerRuns(t *testing.T) {
	dir := t.TempDir()
	s, _ := adminServer(t, dir)
	env := []string{"COINLEDGER_DATA_DIR=" + dir, "COINLEDGER_LISTEN=" + strings.TrimPrefix(s.URL, "http://"),
		"COINLEDGER_ADMIN_PASSWORD=" + adminPassword, "COINLEDGER_BCRYPT_COST=4", "COINLEDGER_TOKEN="}
	out := cli(t, "password-erin\n", env, "users", "add", "erin", "-email", "erin@example.com")
	if !strings.Contains(out, "user erin added") || !strings.Contains(out, "going through the server's admin API") {
		t.Fatalf("users add said:\n%s", out)
	}
	newClient(t, s).login("erin", "password-erin")

	file := filepath.Join(t.TempDir(), "live.ndjson")
	cli(t, "", env, "events", "export", "-o", file)
	b, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(b), `{"format":"coinledger-events"`) || !strings.Contains(string(b), `{"end":{"events":`) {
		t.Fatalf("the export: %v\n%s", err, b)
	}
	if out := cli(t, "", env, "audit", "verify"); !strings.Contains(out, "ok: ") {
		t.Fatalf("audit verify said:\n%s", out)
	}
	if out := cli(t, "", env, "projections", "status"); !strings.Contains(out, "wallet") {
		t.Fatalf("projections status said:\n%s", out)
	}
	// Every server runs the user directory follower: a list without it
	// did not come from the server.
	if out := cli(t, "", env, "followers", "list"); !strings.Contains(out, "FOLLOWER") || !strings.Contains(out, "\n"+users.DirectoryName+" ") {
		t.Fatalf("followers list said:\n%s", out)
	}

	cmd := exec.Command(binary, "events", "import", file)
	cmd.Env = append(os.Environ(), env...)
	out2, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out2), "stop the server") {
		t.Fatalf("import into the served store: %v\n%s", err, out2)
	}
}
