// Package secret is the one type for passwords, keys and tokens in
// configuration: it never prints, logs or marshals its value, so a
// configuration can be shown (coinledger config show) or logged whole.
package secret

import (
	"log/slog"
	"net/url"
	"strings"
)

// Redacted is what a String shows instead of its value.
const Redacted = "[redacted]"

// String is a secret string. Its value is only had through Reveal; YAML
// and JSON decode into it as into a plain string.
type String string

func (String) String() string                 { return Redacted }
func (String) GoString() string               { return Redacted }
func (String) LogValue() slog.Value           { return slog.StringValue(Redacted) }
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Reveal returns the value.
func (s String) Reveal() string { return string(s) }

// URL is a connection or feed URL that may carry credentials: a password in
// its user info (postgres://app:pw@db/ledger, esdb://admin:pw@host) or a key
// in its query (?apikey=..., ?token=...). It prints with those parts
// redacted (see Redact) and gives its value only through Reveal; YAML and
// JSON decode into it as into a plain string.
type URL string

func (u URL) String() string               { return Redact(string(u)) }
func (u URL) GoString() string             { return Redact(string(u)) }
func (u URL) LogValue() slog.Value         { return slog.StringValue(Redact(string(u))) }
func (u URL) MarshalText() ([]byte, error) { return []byte(Redact(string(u))), nil }

// Reveal returns the value.
func (u URL) Reveal() string { return string(u) }

// Redact returns raw with the password of its user info and the values of
// its credential-like query parameters (names containing key, token,
// secret, pass, auth, sig or credential, in any case) replaced by
// [redacted]; the rest stays readable, so an operator still sees which
// host and database a URL names. Text that does not parse as a URL with a
// scheme is redacted whole unless it has no user info and no query.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/?#@") {
		return raw // a plain path or name
	}
	if !strings.ContainsAny(rest, "@?#") {
		return raw // sqlite:data/events.db, a URL without credentials
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name, values := range q {
			if sensitiveParam(name) {
				for i := range values {
					values[i] = Redacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Redacted, ""
	}
	out := u.String()
	// url.String escapes brackets and braces; keep the marker and URL
	// templates ({base}) readable.
	return strings.NewReplacer("%5Bredacted%5D", Redacted, "%7B", "{", "%7D", "}").Replace(out)
}

func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"key", "token", "secret", "pass", "pwd", "auth", "sig", "credential", "session"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
