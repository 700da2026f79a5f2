package test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsersDisableEnableCLI: `coinledger users disable NAME` refuses the
// user's logins (403 user_disabled) and the users list shows it disabled;
// `users enable NAME` lets it log in again; an unknown user is an error.
func TestUsersDisableEnableCLI(t *testing.T) {
	dir := t.TempDir()
	env := []string{"COINLEDGER_DATA_DIR=" + dir, "COINLEDGER_BCRYPT_COST=4"}
	cli(t, "password-dave\n", env, "users", "add", "dave")
	if out := cli(t, "", env, "users", "disable", "dave"); !strings.Contains(out, "user dave disabled") {
		t.Fatalf("disable said:\n%s", out)
	}
	cli(t, "", env, "users", "disable", "dave") // idempotent
	cmd := exec.Command(binary, "users", "disable", "nobody")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("disabling an unknown user succeeded:\n%s", out)
	}

	s, admin := adminServer(t, dir)
	dave := newClient(t, s)
	if r := dave.do("POST", "/auth/login", map[string]string{"username": "dave", "password": "password-dave"}); r.Status != http.StatusForbidden || r.problemCode() != "user_disabled" {
		t.Fatalf("disabled user's login: %d %s", r.Status, r.Body)
	}
	waitFor(t, "dave listed as disabled", func() bool {
		var list struct {
			Users []struct {
				Username string
				Disabled bool
			}
		}
		r, err := admin.try("GET", "/users", nil)
		if err != nil || r.Status != http.StatusOK { // the read models may still be migrating
			return false
		}
		r.JSON(t, &list)
		for _, u := range list.Users {
			if u.Username == "dave" {
				return u.Disabled
			}
		}
		return false
	})
	s.Stop(t) // the CLI needs the embedded store

	if out := cli(t, "", env, "users", "enable", "dave"); !strings.Contains(out, "user dave enabled") {
		t.Fatalf("enable said:\n%s", out)
	}
	s, _ = adminServer(t, dir)
	newClient(t, s).login("dave", "password-dave")
}

// TestGrapheneImportWildcardReadOnly: the CLI imports the "*" entry
// read-only although its API sets include network_broadcast_api, unless
// -wildcard-writes is given.
func TestGrapheneImportWildcardReadOnly(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api-access.json")
	b, _ := json.Marshal(map[string]any{"permission_map": []any{
		[]any{"*", map[string]any{"password_hash_b64": "*", "password_salt_b64": "*",
			"allowed_apis": []string{"database_api", "network_broadcast_api", "history_api"}}},
	}})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"COINLEDGER_DATA_DIR=" + dir}
	if out := cli(t, "", env, "users", "import-graphene", file, "-wallet", "hot"); !strings.Contains(out, "with permissions [read] on hot") {
		t.Fatalf("import said:\n%s", out)
	}
	out := cli(t, "", env, "users", "import-graphene", file, "-wallet", "hot", "-wildcard-writes")
	if !strings.Contains(out, "with permissions [read address transfer withdraw] on hot") {
		t.Fatalf("import -wildcard-writes said:\n%s", out)
	}
}
