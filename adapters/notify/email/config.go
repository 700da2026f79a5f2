package email

import (
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"net/mail"
	"strings"
	"time"
)

// TLS modes of Config.TLS.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and fails if the
	// server does not offer it. The default.
	TLSStartTLS = "starttls"
	// TLSStartTLSOpportunistic upgrades with STARTTLS when the server
	// offers it and otherwise goes on in plain text (without sending the
	// password: authentication then fails).
	TLSStartTLSOpportunistic = "starttls-opportunistic"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "tls"
	// TLSNone never encrypts, and sends the password in plain text. Only
	// for a relay on the same host or a trusted network, and for tests.
	TLSNone = "none"
)

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrInvalidConfig: Validate found a problem in a Config.
var ErrInvalidConfig = errors.New("email: invalid config")

// Config says how to reach the SMTP server that sends our mail.
type Config struct {
	Host string `yaml:"host"`
	// Port defaults to 465 for TLS "tls", 25 for "none" and 587 otherwise.
	Port int `yaml:"port"`
	// Username and Password, when set, authenticate with PLAIN or LOGIN,
	// whichever the server offers; only over TLS unless TLS is "none".
	// The password never prints, logs or marshals.
	Username string        `yaml:"username"`
	Password secret.String `yaml:"password"`
	// From is the sender, "addr@example.com" or "Name <addr@example.com>".
	From string `yaml:"from"`
	// TLS is "starttls" (the default), "starttls-opportunistic", "tls"
	// or "none"; see the TLS… constants.
	TLS string `yaml:"tls"`
	// Timeout bounds one Send as a whole: connect, TLS, authentication
	// and transfer. Zero means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (c *Config) setDefaults() {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Port == 0 {
		switch c.TLS {
		case TLSImplicit:
			c.Port = 465
		case TLSNone:
			c.Port = 25
		default:
			c.Port = 587
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate reports every problem of c at once, after filling in the
// defaults, in an error wrapping ErrInvalidConfig. It never shows the
// password.
func (c Config) Validate() error {
	c.setDefaults()
	var problems []string
	if c.Host == "" {
		problems = append(problems, "host is empty")
	} else if strings.ContainsAny(c.Host, " \t\r\n/") {
		problems = append(problems, fmt.Sprintf("host %q is not a host name or address", c.Host))
	}
	if c.Port < 1 || c.Port > 65535 {
		problems = append(problems, fmt.Sprintf("port %d is not between 1 and 65535", c.Port))
	}
	switch {
	case c.Username == "" && c.Password != "":
		problems = append(problems, "password is set but username is empty")
	case c.Username != "" && c.Password == "":
		problems = append(problems, "username is set but password is empty")
	}
	if c.From == "" {
		problems = append(problems, "from is empty")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		problems = append(problems, fmt.Sprintf("from %q is not an email address: %v", c.From, err))
	}
	switch c.TLS {
	case TLSStartTLS, TLSStartTLSOpportunistic, TLSImplicit, TLSNone:
	default:
		problems = append(problems, fmt.Sprintf("tls %q is not one of %q, %q, %q, %q",
			c.TLS, TLSStartTLS, TLSStartTLSOpportunistic, TLSImplicit, TLSNone))
	}
	if c.Timeout < 0 {
		problems = append(problems, fmt.Sprintf("timeout %v is negative", c.Timeout))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}
