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

// cli runs the coinledger binary with stdin and the environment.
func cli(t *testing.T, stdin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("coinledger %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestConfigSeedsWalletsAndUsers: wallets and users declared in the YAML
// file exist after start, restarts append nothing, secrets never print.
func TestConfigSeedsWalletsAndUsers(t *testing.T) {
	dir := t.TempDir()
	hash := strings.TrimSpace(cli(t, "password-carol\n", nil, "users", "hash-password"))
	if !strings.HasPrefix(hash, "$2") {
		t.Fatalf("hash-password printed %q", hash)
	}
	config := filepath.Join(dir, "coinledger.yml")
	yml := `
jwt_secret: "0123456789abcdef0123456789abcdef-seed"
wallets:
  - name: hot
    coin: BTC
    permissions: [read, transfer]
users:
  - username: carol
    email: carol@example.com
    password_hash: "` + hash + `"
    wallets:
      hot: [read]
`
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"COINLEDGER_CONFIG=" + config}
	shown := cli(t, "", append(env, "COINLEDGER_ADMIN_PASSWORD=super-secret-admin"), "config", "show")
	if strings.Contains(shown, "super-secret-admin") || strings.Contains(shown, "0123456789abcdef") || !strings.Contains(shown, "[redacted]") {
		t.Fatalf("config show leaks a secret:\n%s", shown)
	}

	s, admin := adminServer(t, dir, env...)
	head := func(c *client) uint64 {
		var st struct{ Store struct{ Head uint64 } }
		c.expect(http.StatusOK, "GET", "/status", nil).JSON(t, &st)
		return st.Store.Head
	}
	before := head(admin)
	s.Stop(t)
	s2, admin2 := adminServer(t, dir, env...)
	if after := head(admin2); after != before+1 { // +1: the admin's new login session
		t.Fatalf("restart appended %d events, want only the login's 1", after-before)
	}
	carol := newClient(t, s2)
	carol.login("carol", "password-carol")
	var me struct {
		Wallets []struct {
			Wallet      string
			Permissions []string
		}
	}
	carol.expect(http.StatusOK, "GET", "/me", nil).JSON(t, &me)
	if len(me.Wallets) != 1 || me.Wallets[0].Wallet != "hot" || strings.Join(me.Wallets[0].Permissions, ",") != "read" {
		t.Fatalf("carol sees %+v", me)
	}
	s2.Stop(t) // its log is all written once it has exited
	if strings.Contains(s2.Log(), hash) || strings.Contains(s2.Log(), "password-carol") {
		t.Fatal("a password or hash appears in the log")
	}
}

// TestGrapheneImport imports the seed's api-access.json with the CLI: a
// known user logs in with its Graphene password (upgraded on the way), a
// known user with a wrong password is refused, an unknown user falls back
// to the "*" entry.
func TestGrapheneImport(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api-access.json")
	m := map[string]any{"permission_map": []any{
		[]any{"bytemaster", map[string]any{"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
			"password_salt_b64": "INDdM6iCi/8=", "allowed_apis": []string{"database_api", "network_broadcast_api", "history_api", "network_node_api"}}},
		[]any{"*", map[string]any{"password_hash_b64": "*", "password_salt_b64": "*",
			"allowed_apis": []string{"database_api", "network_broadcast_api", "history_api"}}},
	}}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"COINLEDGER_DATA_DIR=" + dir}
	out := cli(t, "", env, "users", "import-graphene", file, "-wallet", "hot")
	if !strings.Contains(out, "imported bytemaster") {
		t.Fatalf("import said:\n%s", out)
	}
	s, _ := adminServer(t, dir)
	c := newClient(t, s)
	c.login("bytemaster", "supersecret")
	c.login("bytemaster", "supersecret") // the second login uses the upgraded hash
	if r := c.do("POST", "/auth/login", map[string]string{"username": "bytemaster", "password": "wrong-password"}); r.Status != 401 {
		t.Fatalf("known user, wrong password: %d", r.Status)
	}
	var me struct{ Username string }
	c.login("somebody-unknown", "anything-at-all")
	c.expect(http.StatusOK, "GET", "/me", nil).JSON(t, &me)
	if me.Username != "anonymous" {
		t.Fatalf("unknown user logged in as %q, want anonymous", me.Username)
	}
}

// TestConfigShowRedactsEverySecret: every credential a configuration can
// hold is redacted by config show.
func TestConfigShowRedactsEverySecret(t *testing.T) {
	config := filepath.Join(t.TempDir(), "coinledger.yml")
	yml := `
jwt_secret: "leak-jwt-0123456789abcdef0123456789abcdef"
coins:
  - coin: BTC
    backend: bitcoind
    bitcoind: {url: "http://rpcuser:leak-rpc-password@127.0.0.1:8332", network: regtest}
  - coin: DOGE
    backend: blockio
    blockio: {api_key: leak-blockio-key, pin: leak-blockio-pin, network: DOGETEST}
walletnotify:
  redis: [{addr: "127.0.0.1:6379", password: leak-redis-password, coin: BTC}]
notify:
  smtp: {host: smtp.example.com, username: mailer, password: leak-smtp-password, from: a@example.com}
  webhook_secret: leak-webhook-secret
price_feeds:
  pollers: [{preset: coinbase, pairs: [BTC-USD], headers: {X-Api-Key: leak-feed-key}}]
`
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	shown := cli(t, "", []string{"COINLEDGER_CONFIG=" + config}, "config", "show")
	if strings.Contains(shown, "leak-") || !strings.Contains(shown, "rpcuser") {
		t.Fatalf("config show:\n%s", shown)
	}
}

// TestConfigShowRedactsURLsAndHashes: `config show` prints the configuration
// with every credential redacted: passwords inside store URLs, API keys in
// feed URL queries, users' password hashes, and the secrets of every
// adapter. The test greps the output for each configured secret.
func TestConfigShowRedactsURLsAndHashes(t *testing.T) {
	dir := t.TempDir()
	secrets := map[string]string{
		"event store URL password": "esdb-pass-ae81",
		"read model URL password":  "pg-pass-7c2d",
		"admin password":           "admin-pass-91fe",
		"jwt secret":               "jwt-secret-0123456789abcdef0123456789",
		"previous jwt secret":      "jwt-old-secret-0123456789abcdef012345",
		"user password hash":       "$2a$10$abcdefghijklmnopqrstuuvwxyz0123456789ABCDEFGHIJKLMNOPQ",
		"poller URL api key":       "poller-key-5b3a",
		"poller header":            "poller-header-44c1",
		"stream URL token":         "stream-token-19d8",
		"bitcoind URL password":    "rpc-pass-6e0f",
		"redis password":           "redis-pass-2aa7",
		"redis URL password":       "redis-url-pass-8d1c",
		"smtp password":            "smtp-pass-f00d",
		"webhook signing secret":   "hook-secret-c0ffee",
		"block.io API key":         "blockio-key-77aa",
		"block.io PIN":             "blockio-pin-9911",
	}
	yml := `
event_store: "esdb://admin:` + secrets["event store URL password"] + `@127.0.0.1:2113?tls=false"
read_models: "postgres://app:` + secrets["read model URL password"] + `@127.0.0.1:5432/ledger?sslmode=disable"
jwt_secret: "` + secrets["jwt secret"] + `"
jwt_previous_secrets: ["` + secrets["previous jwt secret"] + `"]
coins:
  - coin: BTC
    backend: bitcoind
    bitcoind: {url: "http://rpc:` + secrets["bitcoind URL password"] + `@127.0.0.1:18443", network: regtest}
  - coin: DOGE
    backend: blockio
    blockio: {api_key: "` + secrets["block.io API key"] + `", pin: "` + secrets["block.io PIN"] + `", network: DOGE}
walletnotify:
  redis:
    - {addr: "127.0.0.1:6379", password: "` + secrets["redis password"] + `", coin: BTC}
    - {url: "redis://:` + secrets["redis URL password"] + `@127.0.0.1:6379/0", coin: BTC}
notify:
  smtp: {host: smtp.example.com, port: 587, username: ops, password: "` + secrets["smtp password"] + `", from: ops@example.com}
  webhook_secret: "` + secrets["webhook signing secret"] + `"
price_feeds:
  pollers:
    - name: desk
      pairs: [BTC/USD]
      url: "https://feed.example.com/v1/{base}?apikey=` + secrets["poller URL api key"] + `&quote={quote}"
      price_path: data.price
      headers: {X-Api-Key: "` + secrets["poller header"] + `"}
  streams:
    - name: ticker
      url: "wss://stream.example.com/ws?token=` + secrets["stream URL token"] + `"
      symbols: {BTCUSD: BTC/USD}
      symbol_path: s
      price_path: p
users:
  - username: carol
    email: carol@example.com
    password_hash: "` + secrets["user password hash"] + `"
`
	config := filepath.Join(dir, "coinledger.yml")
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	shown := cli(t, "", []string{"COINLEDGER_CONFIG=" + config, "COINLEDGER_ADMIN_PASSWORD=" + secrets["admin password"]},
		"config", "show")
	for what, s := range secrets {
		if strings.Contains(shown, s) {
			t.Errorf("config show prints the %s", what)
		}
	}
	// Redacted, not dropped: the operator still sees where things are.
	for _, want := range []string{"esdb://admin:[redacted]@127.0.0.1:2113", "postgres://app:[redacted]@127.0.0.1:5432/ledger",
		"apikey=[redacted]", "quote={quote}", "token=[redacted]", "username: carol"} {
		if !strings.Contains(shown, want) {
			t.Errorf("config show lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("config show:\n%s", shown)
	}
}
