// Package secret is the one type for passwords, keys and tokens in
// configuration: it never prints, logs or marshals its value, so a
// configuration can be shown (coinledger config show) or logged whole.
package secret

import "log/slog"

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
