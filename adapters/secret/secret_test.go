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
