package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/adapters/secret"
	"gopkg.in/yaml.v3"
)

func TestNeverShown(t *testing.T) {
	type cfg struct {
		Password secret.String `yaml:"password" json:"password"`
	}
	c := cfg{Password: "hunter2-very-secret"}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "password", c.Password, "cfg", c)
	y, _ := yaml.Marshal(c)
	j, _ := json.Marshal(c)
	for name, out := range map[string]string{"fmt %v": fmt.Sprintf("%v", c), "fmt %#v": fmt.Sprintf("%#v", c),
		"fmt %s": fmt.Sprintf("%s", c.Password), "slog": logs.String(), "yaml": string(y), "json": string(j)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s shows the secret: %s", name, out)
		}
	}
	var back cfg
	if err := yaml.Unmarshal([]byte("password: s3cret\n"), &back); err != nil || back.Password.Reveal() != "s3cret" {
		t.Fatalf("yaml decode: %q %v", back.Password.Reveal(), err)
	}
}

func TestURLRedactsCredentials(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sqlite:data/events.db", "sqlite:data/events.db"},
		{"postgres://app:pg-pass-1@db:5432/ledger?sslmode=disable", "postgres://app:[redacted]@db:5432/ledger?sslmode=disable"},
		{"esdb://admin:changeit-2@esdb:2113?tls=false", "esdb://admin:[redacted]@esdb:2113?tls=false"},
		{"postgres://app@db/ledger", "postgres://app@db/ledger"},
		{"https://feed.example/v1/{base}?apikey=feed-key-3&pair=BTC", "https://feed.example/v1/{base}?apikey=[redacted]&pair=BTC"},
		{"wss://stream.example/ws?access_token=tok-4&X-Signature=sig-5", "wss://stream.example/ws?X-Signature=[redacted]&access_token=[redacted]"},
		{"redis://:redis-pass-6@127.0.0.1:6379/0", "redis://:[redacted]@127.0.0.1:6379/0"},
		{"postgres://app:pa%zz@db/x", secret.Redacted},
	} {
		u := secret.URL(tc.in)
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "url", u)
		y, _ := yaml.Marshal(struct{ U secret.URL }{u})
		for name, got := range map[string]string{"String": u.String(), "%v": fmt.Sprintf("%v", u), "%#v": fmt.Sprintf("%#v", u)} {
			if got != tc.want {
				t.Errorf("%s of %q = %q, want %q", name, tc.in, got, tc.want)
			}
		}
		if !strings.Contains(string(y), tc.want) && !strings.Contains(string(y), strings.Trim(fmt.Sprintf("%q", tc.want), `"`)) {
			t.Errorf("yaml of %q = %s, want %q", tc.in, y, tc.want)
		}
		if !strings.Contains(logs.String(), tc.want) && !strings.Contains(logs.String(), strings.Trim(fmt.Sprintf("%q", tc.want), `"`)) {
			t.Errorf("slog of %q = %s, want %q", tc.in, logs.String(), tc.want)
		}
		if u.Reveal() != tc.in {
			t.Errorf("Reveal = %q", u.Reveal())
		}
	}
}
