package graphene

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
)

// Limits on a permission map.
const (
	MaxFileSize    = 1 << 20
	MaxEntries     = 10000
	MaxUsernameLen = 256
)

// ErrInvalid: a permission map is malformed. Parse returns an *Error that
// wraps it.
var ErrInvalid = errors.New("invalid api-access file")

// Error tells where and why a permission map is malformed.
type Error struct {
	Path   string // e.g. "permission_map[1][1].allowed_apis[0]"; "" for the document
	Offset int64  // byte offset in the input near the problem
	Msg    string
}

func (e *Error) Error() string {
	path := e.Path
	if path == "" {
		path = "document"
	}
	return fmt.Sprintf("api-access.json: %s (byte %d): %s", path, e.Offset, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// Parse reads an api-access.json document. It is strict: the document is
// one object with exactly the key "permission_map", whose value is an
// array of [username, {password_hash_b64, password_salt_b64, allowed_apis}]
// pairs with all three keys and no others; duplicate keys, duplicate
// usernames, unknown API sets, duplicate API sets, hashes that are not "*"
// or base64 of 32 bytes, salts that are not base64 (or "*" beside a "*"
// hash) and trailing data are errors.
func Parse(data []byte) (Map, error) {
	if len(data) > MaxFileSize {
		return Map{}, &Error{Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	p := &parser{dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	m, err := p.document()
	if err != nil {
		return Map{}, err
	}
	return m, nil
}

type parser struct {
	dec *json.Decoder
}

func (p *parser) fail(path, format string, args ...any) error {
	return &Error{Path: path, Offset: p.dec.InputOffset(), Msg: fmt.Sprintf(format, args...)}
}

// token reads the next token; syntax errors and a premature end are errors
// at path.
func (p *parser) token(path string) (json.Token, error) {
	t, err := p.dec.Token()
	if err == io.EOF {
		return nil, p.fail(path, "unexpected end of input")
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &Error{Path: path, Offset: se.Offset, Msg: se.Error()}
		}
		return nil, p.fail(path, "%v", err)
	}
	return t, nil
}

func (p *parser) delim(path string, want json.Delim, what string) error {
	t, err := p.token(path)
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return p.fail(path, "want %s, got %s", what, describe(t))
	}
	return nil
}

func (p *parser) str(path string) (string, error) {
	t, err := p.token(path)
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", p.fail(path, "want a string, got %s", describe(t))
	}
	return s, nil
}

// key reads an object key, or reports the object's end.
func (p *parser) key(path string) (key string, end bool, err error) {
	if !p.dec.More() {
		t, err := p.token(path)
		if err != nil {
			return "", false, err
		}
		if d, ok := t.(json.Delim); !ok || d != '}' {
			return "", false, p.fail(path, "want } got %s", describe(t))
		}
		return "", true, nil
	}
	s, err := p.str(path)
	return s, false, err
}

func describe(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return fmt.Sprintf("the string %q", clip(t))
	case json.Number:
		return "the number " + clip(string(t))
	case bool:
		return fmt.Sprintf("%v", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", t)
}

func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

func (p *parser) document() (Map, error) {
	if err := p.delim("", '{', "an object"); err != nil {
		return Map{}, err
	}
	var m Map
	seen := false
	for {
		k, end, err := p.key("")
		if err != nil {
			return Map{}, err
		}
		if end {
			break
		}
		if k != "permission_map" {
			return Map{}, p.fail("", "unknown key %q (want only permission_map)", clip(k))
		}
		if seen {
			return Map{}, p.fail("", "duplicate key permission_map")
		}
		seen = true
		if m, err = p.permissionMap(); err != nil {
			return Map{}, err
		}
	}
	if !seen {
		return Map{}, p.fail("", "missing key permission_map")
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return Map{}, p.fail("", "trailing data after the document")
	}
	return m, nil
}

func (p *parser) permissionMap() (Map, error) {
	const path = "permission_map"
	if err := p.delim(path, '[', "an array of [username, entry] pairs"); err != nil {
		return Map{}, err
	}
	m := Map{index: map[string]int{}}
	for i := 0; p.dec.More(); i++ {
		at := fmt.Sprintf("%s[%d]", path, i)
		if i >= MaxEntries {
			return Map{}, p.fail(at, "more than %d entries", MaxEntries)
		}
		e, err := p.entry(at)
		if err != nil {
			return Map{}, err
		}
		if first, dup := m.index[e.Username]; dup {
			return Map{}, p.fail(at+"[0]", "duplicate user %q (first at %s[%d])", clip(e.Username), path, first)
		}
		m.index[e.Username] = len(m.entries)
		m.entries = append(m.entries, e)
	}
	if err := p.delim(path, ']', "the end of the array"); err != nil {
		return Map{}, err
	}
	return m, nil
}

func (p *parser) entry(path string) (Entry, error) {
	if err := p.delim(path, '[', "a [username, entry] pair"); err != nil {
		return Entry{}, err
	}
	if !p.dec.More() {
		return Entry{}, p.fail(path, "want a [username, entry] pair, got an empty array")
	}
	name, err := p.str(path + "[0]")
	if err != nil {
		return Entry{}, err
	}
	if err := validUsername(name); err != "" {
		return Entry{}, p.fail(path+"[0]", "username %s", err)
	}
	if !p.dec.More() {
		return Entry{}, p.fail(path, "want a [username, entry] pair, got only the username")
	}
	e, err := p.fields(path+"[1]", name)
	if err != nil {
		return Entry{}, err
	}
	if p.dec.More() {
		return Entry{}, p.fail(path, "want a [username, entry] pair, got more than two elements")
	}
	if err := p.delim(path, ']', "the end of the pair"); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func validUsername(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > MaxUsernameLen {
		return fmt.Sprintf("is longer than %d bytes", MaxUsernameLen)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "has a control or non-printable character"
	}
	return ""
}

func (p *parser) fields(path, name string) (Entry, error) {
	if err := p.delim(path, '{', "an object"); err != nil {
		return Entry{}, err
	}
	e := Entry{Username: name}
	var hash, salt, apis bool
	for {
		k, end, err := p.key(path)
		if err != nil {
			return Entry{}, err
		}
		if end {
			break
		}
		at := path + "." + k
		switch k {
		case "password_hash_b64":
			if hash {
				return Entry{}, p.fail(path, "duplicate key %s", k)
			}
			hash = true
			if e.PasswordHashB64, err = p.str(at); err != nil {
				return Entry{}, err
			}
		case "password_salt_b64":
			if salt {
				return Entry{}, p.fail(path, "duplicate key %s", k)
			}
			salt = true
			if e.PasswordSaltB64, err = p.str(at); err != nil {
				return Entry{}, err
			}
		case "allowed_apis":
			if apis {
				return Entry{}, p.fail(path, "duplicate key %s", k)
			}
			apis = true
			if e.AllowedAPIs, err = p.apis(at); err != nil {
				return Entry{}, err
			}
		default:
			return Entry{}, p.fail(path, "unknown key %q (want password_hash_b64, password_salt_b64, allowed_apis)", clip(k))
		}
	}
	for _, f := range []struct {
		key  string
		seen bool
	}{{"password_hash_b64", hash}, {"password_salt_b64", salt}, {"allowed_apis", apis}} {
		if !f.seen {
			return Entry{}, p.fail(path, "missing key %s", f.key)
		}
	}
	if e.PasswordHashB64 != Wildcard {
		if b, err := base64.StdEncoding.Strict().DecodeString(e.PasswordHashB64); err != nil || len(b) != 32 {
			return Entry{}, p.fail(path+".password_hash_b64", `want "*" or the base64 of a 32-byte SHA-256 hash`)
		}
	}
	if e.PasswordSaltB64 != Wildcard || e.PasswordHashB64 != Wildcard {
		if _, err := base64.StdEncoding.Strict().DecodeString(e.PasswordSaltB64); err != nil {
			what := "base64"
			if e.PasswordHashB64 == Wildcard {
				what = `"*" or base64`
			}
			return Entry{}, p.fail(path+".password_salt_b64", "want %s", what)
		}
	}
	return e, nil
}

func (p *parser) apis(path string) ([]string, error) {
	if err := p.delim(path, '[', "an array of API set names"); err != nil {
		return nil, err
	}
	out := []string{}
	for i := 0; p.dec.More(); i++ {
		at := fmt.Sprintf("%s[%d]", path, i)
		name, err := p.str(at)
		if err != nil {
			return nil, err
		}
		if !KnownAPI(name) {
			return nil, p.fail(at, "unknown API set %q (known: %s)", clip(name), strings.Join(KnownAPIs(), ", "))
		}
		if slices.Contains(out, name) {
			return nil, p.fail(at, "API set %s listed twice", name)
		}
		out = append(out, name)
	}
	if err := p.delim(path, ']', "the end of the array"); err != nil {
		return nil, err
	}
	return out, nil
}

// MarshalJSON writes m in the api-access.json format; Parse reads it back
// to an equal Map.
func (m Map) MarshalJSON() ([]byte, error) {
	type fields struct {
		Hash string   `json:"password_hash_b64"`
		Salt string   `json:"password_salt_b64"`
		APIs []string `json:"allowed_apis"`
	}
	pairs := make([][2]any, len(m.entries))
	for i, e := range m.entries {
		apis := e.AllowedAPIs
		if apis == nil {
			apis = []string{}
		}
		pairs[i] = [2]any{e.Username, fields{e.PasswordHashB64, e.PasswordSaltB64, apis}}
	}
	return json.Marshal(struct {
		PermissionMap [][2]any `json:"permission_map"`
	}{pairs})
}
