package email

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tls      string
		wantTLS  string
		wantPort int
	}{
		{"", TLSStartTLS, 587},
		{TLSStartTLS, TLSStartTLS, 587},
		{TLSStartTLSOpportunistic, TLSStartTLSOpportunistic, 587},
		{TLSImplicit, TLSImplicit, 465},
		{TLSNone, TLSNone, 25},
	}
	for _, tt := range tests {
		c := Config{Host: "smtp.example.com", From: "a@example.com", TLS: tt.tls}
		c.setDefaults()
		if c.TLS != tt.wantTLS || c.Port != tt.wantPort || c.Timeout != DefaultTimeout {
			t.Errorf("TLS %q: defaults to TLS %q, port %d, timeout %v; want %q, %d, %v",
				tt.tls, c.TLS, c.Port, c.Timeout, tt.wantTLS, tt.wantPort, DefaultTimeout)
		}
	}
	c := Config{Host: "h", From: "a@example.com", Port: 2525, Timeout: time.Second}
	c.setDefaults()
	if c.Port != 2525 || c.Timeout != time.Second {
		t.Errorf("setDefaults replaced port %d, timeout %v", c.Port, c.Timeout)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := Config{Host: "smtp.example.com", From: "Coinledger <noreply@example.com>"}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"minimal", func(*Config) {}, nil},
		{"everything", func(c *Config) {
			*c = Config{Host: "::1", Port: 2525, Username: "u", Password: "p", From: "a@example.com",
				TLS: TLSImplicit, Timeout: time.Second, InsecureSkipVerify: true}
		}, nil},
		{"no host", func(c *Config) { c.Host = "" }, []string{"host is empty"}},
		{"host with a path", func(c *Config) { c.Host = "smtp.example.com/x" }, []string{"not a host name"}},
		{"negative port", func(c *Config) { c.Port = -1 }, []string{"port -1"}},
		{"port too big", func(c *Config) { c.Port = 65536 }, []string{"port 65536"}},
		{"unknown tls", func(c *Config) { c.TLS = "ssl" }, []string{`tls "ssl" is not one of`}},
		{"tls in capitals", func(c *Config) { c.TLS = "STARTTLS" }, []string{`tls "STARTTLS"`}},
		{"no from", func(c *Config) { c.From = "" }, []string{"from is empty"}},
		{"bad from", func(c *Config) { c.From = "noreply" }, []string{`from "noreply" is not an email address`}},
		{"password without username", func(c *Config) { c.Password = "hunter2" }, []string{"username is empty"}},
		{"username without password", func(c *Config) { c.Username = "alice" }, []string{"password is empty"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"timeout -1s is negative"}},
		{"all at once", func(c *Config) {
			*c = Config{Port: 99999, Password: "hunter2", TLS: "ssl", Timeout: -1}
		}, []string{"host is empty", "port 99999", "username is empty", "from is empty", `tls "ssl"`, "negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Validate shows the password: %v", err)
			}
			if s, err := New(c); err == nil || s != nil {
				t.Errorf("New accepted the config")
			}
		})
	}
}

func TestConfigHidesPassword(t *testing.T) {
	t.Parallel()
	c := Config{Host: "smtp.example.com", Username: "alice", Password: "hunter2", From: "a@example.com"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "email", c)
	for _, shown := range []string{
		fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", &c), logged.String(),
	} {
		if strings.Contains(shown, "hunter2") || !strings.Contains(shown, "alice") {
			t.Errorf("shown as %s", shown)
		}
	}
}
