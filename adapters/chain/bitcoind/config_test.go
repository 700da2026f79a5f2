package bitcoind

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"minimal", Config{URL: "http://u:secret@127.0.0.1:8332"}, nil},
		{"cookie", Config{URL: "http://127.0.0.1:8332/wallet/hot", CookieFile: "/var/lib/bitcoind/.cookie", Network: "signet"}, nil},
		{"empty", Config{}, []string{"url is required"}},
		{"everything wrong", Config{URL: "ftp://u:secret@/x", Network: "moon", Timeout: -time.Second, FeeRate: -1},
			[]string{"scheme", "no host", `network "moon"`, "timeout", "fee_rate"}},
		{"no credentials", Config{URL: "http://127.0.0.1:8332"}, []string{"no password"}},
		{"unparsable", Config{URL: "http://u:secret@127.0.0.1:port"}, []string{"not a valid URL"}},
	} {
		err := c.cfg.Validate()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: valid, want %q", c.name, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v shows the password", c.name, err)
		}
	}
}

func TestConfigHidesPassword(t *testing.T) {
	cfg := Config{URL: "http://rpc:secret@127.0.0.1:8332", Network: "regtest"}
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, b)} {
		if strings.Contains(s, "secret") || !strings.Contains(s, "127.0.0.1:8332") {
			t.Errorf("%s", s)
		}
	}
	if b.cfg.Timeout != DefaultTimeout || b.cfg.FeeRate != DefaultFeeRate {
		t.Errorf("defaults not applied: %v", b.cfg)
	}
	if _, err := Open(Config{URL: "http://rpc:secret@127.0.0.1:8332", Network: "moon"}); err == nil {
		t.Error("Open accepted an invalid config")
	}
}

func TestConfigYAMLHidesPassword(t *testing.T) {
	out, err := yaml.Marshal(Config{URL: "http://user:hunter2@127.0.0.1:8332", Network: "regtest"})
	if err != nil || strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "127.0.0.1:8332") {
		t.Fatalf("yaml %s %v", out, err)
	}
}
