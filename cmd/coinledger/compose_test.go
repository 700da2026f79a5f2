package main

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is what the test reads of docker-compose.yml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       *struct{ Target string }     `yaml:"build"`
	Command     []string                     `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	Ports       []string                     `yaml:"ports"`
	Volumes     []string                     `yaml:"volumes"`
	DependsOn   map[string]map[string]string `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// interpolation is Compose's ${NAME:-default} (and ${NAME:?message}).
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::?-([^}]*)|:?\?[^}]*)?\}`)

// resolve replaces each ${NAME:-default} of s with its default, as
// Compose does with none of them set.
func resolve(s string) string {
	return interpolation.ReplaceAllString(s, "$2")
}

// TestComposeStack holds docker-compose.yml to what the binary reads and to
// the stack's rules, since no Docker engine runs here: every service has a
// healthcheck and starts after healthy dependencies, nothing is published
// beyond loopback, named volumes are declared and hold coinledger's data
// and keys, images are pinned, coinledger's variables are ones it reads and
// with the mounted configuration file load and validate as in `serve`, and
// the services point at each other consistently (store URLs, walletnotify,
// the node's cookie, SMTP).
func TestComposeStack(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"coinledger", "eventstore", "postgres", "bitcoind", "mailpit"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %q", name)
		}
	}
	// A release number (with a variant suffix) or a digest; never latest
	// or a major version alone.
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+(\.\d+){1,2}(-[a-z0-9.-]+)?$|@sha256:[0-9a-f]{64}$`)
	mounts := map[string]map[string]string{} // service → target → source
	for name, s := range c.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 {
			t.Errorf("service %s has no healthcheck", name)
		}
		for dep, cond := range s.DependsOn {
			if cond["condition"] != "service_healthy" {
				t.Errorf("service %s depends on %s with condition %q, want service_healthy", name, dep, cond["condition"])
			}
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown %s", name, dep)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q beyond loopback", name, p)
			}
		}
		if s.Build == nil && !pinned.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to an exact version", name, s.Image)
		}
		if s.Build != nil && !strings.HasSuffix(s.Image, ":local") {
			t.Errorf("service %s builds image %q: name it NAME:local", name, s.Image)
		}
		mounts[name] = map[string]string{}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			source, target := parts[0], parts[1]
			mounts[name][target] = source
			if strings.HasPrefix(source, ".") {
				if _, err := os.Stat(filepath.Join(root, source)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, source, err)
				}
			} else if _, ok := c.Volumes[source]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, source)
			}
		}
	}

	cl := c.Services["coinledger"]
	if cl.Build == nil || cl.Build.Target != "service" {
		t.Errorf("coinledger is not built from the Dockerfile's service stage")
	}
	env := map[string]string{}
	for k, v := range cl.Environment {
		if !slices.Contains(envVars, k) {
			t.Errorf("coinledger's environment sets %s, which the binary does not read", k)
		}
		env[k] = resolve(v)
	}
	// Load the configuration as `serve` would, the mounted file read from
	// the repository.
	cfgMount := env["COINLEDGER_CONFIG"]
	source, ok := mounts["coinledger"][cfgMount]
	if !ok {
		t.Fatalf("COINLEDGER_CONFIG=%s is not a mounted file", cfgMount)
	}
	env["COINLEDGER_CONFIG"] = filepath.Join(root, source)
	for _, k := range envVars {
		if v, ok := env[k]; ok {
			t.Setenv(k, v)
		} else {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	cfg, _, err := loadConfig("serve", nil)
	if err != nil {
		t.Fatalf("the stack's configuration does not load: %v", err)
	}

	// Data and keys on a named volume.
	if src := mounts["coinledger"][cfg.DataDir]; src == "" || strings.HasPrefix(src, ".") {
		t.Errorf("the data directory %s is not a named volume", cfg.DataDir)
	}
	// The API is published on the port it listens on.
	_, port, _ := net.SplitHostPort(cfg.Listen)
	if !slices.Contains(cl.Ports, "127.0.0.1:"+port+":"+port) {
		t.Errorf("the API listens on %s but the ports are %v", cfg.Listen, cl.Ports)
	}
	// The stores are the stack's services.
	es, err := url.Parse(cfg.EventStore.Reveal())
	if err != nil || es.Scheme != "esdb" || es.Host != "eventstore:2113" {
		t.Errorf("event store %q is not the eventstore service", cfg.EventStore)
	}
	rm, err := url.Parse(cfg.ReadModels.Reveal())
	pgEnv := map[string]string{}
	for k, v := range c.Services["postgres"].Environment {
		pgEnv[k] = resolve(v)
	}
	if err != nil || rm.Host != "postgres:5432" || rm.User.Username() != pgEnv["POSTGRES_USER"] || rm.Path != "/"+pgEnv["POSTGRES_DB"] {
		t.Errorf("read models %q are not the postgres service's database", cfg.ReadModels)
	} else if pw, _ := rm.User.Password(); pw != pgEnv["POSTGRES_PASSWORD"] {
		t.Errorf("the read models' password is not the postgres service's")
	}
	if !strings.Contains(cl.Environment["COINLEDGER_READ_MODELS"], "${POSTGRES_PASSWORD") ||
		!strings.Contains(c.Services["postgres"].Environment["POSTGRES_PASSWORD"], "${POSTGRES_PASSWORD") {
		t.Errorf("the Postgres password is not the one variable POSTGRES_PASSWORD in both services")
	}
	// walletnotify: the node posts to coinledger's listener.
	_, nport, _ := net.SplitHostPort(cfg.WalletnotifyListen)
	var hook string
	for _, arg := range c.Services["bitcoind"].Command {
		if v, ok := strings.CutPrefix(arg, "-walletnotify="); ok {
			hook = v
		}
	}
	if !strings.Contains(hook, "coinledger notify") || !strings.Contains(hook, "-addr coinledger:"+nport+" ") || !strings.HasSuffix(hook, "%s") {
		t.Errorf("bitcoind's walletnotify %q does not post to coinledger's listener %s", hook, cfg.WalletnotifyListen)
	}
	// The node: URL, network and the cookie on the node's volume.
	if len(cfg.Coins) != 1 || cfg.Coins[0].Backend != backendBitcoind {
		t.Fatalf("coins = %+v, want one bitcoind coin", cfg.Coins)
	}
	bc := cfg.Coins[0].Bitcoind
	if u, err := url.Parse(bc.URL); err != nil || u.Host != "bitcoind:18443" || bc.Network != "regtest" {
		t.Errorf("bitcoind backend %s on %s is not the regtest node", bc.URL, bc.Network)
	}
	var datadir string
	for _, arg := range c.Services["bitcoind"].Command {
		if v, ok := strings.CutPrefix(arg, "-datadir="); ok {
			datadir = v
		}
	}
	nodeVolume := mounts["bitcoind"][datadir]
	found := false
	for target, src := range mounts["coinledger"] {
		if src == nodeVolume && strings.HasPrefix(bc.CookieFile, target+"/regtest/") {
			found = true
		}
	}
	if nodeVolume == "" || !found {
		t.Errorf("cookie file %s is not on the node's data volume (%s at %s)", bc.CookieFile, nodeVolume, datadir)
	}
	if !slices.Contains(c.Services["bitcoind"].Command, "-rpccookieperms=all") {
		t.Errorf("the node's cookie is not readable by coinledger's unprivileged user")
	}
	// Alert e-mails go to the capture service.
	if cfg.Notify.SMTP == nil || cfg.Notify.SMTP.Host != "mailpit" || cfg.Notify.SMTP.Port != 1025 {
		t.Errorf("SMTP %+v is not the mailpit service", cfg.Notify.SMTP)
	}

	// The image: unprivileged, stamped, with a build context that leaves
	// out history, data and keys.
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USER 65532", "-X main.version=${VERSION}", "distroless/static-debian12:nonroot", "AS service", "AS bitcoind"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if last := strings.LastIndex(string(df), "\nFROM "); !strings.Contains(string(df)[last:], "AS service") {
		t.Errorf("the service is not the Dockerfile's last (default) stage")
	}
	ign, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "data"} {
		if !slices.Contains(strings.Fields(string(ign)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
