package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// bodyProblem decodes body into a fresh v of the type of sample and returns
// the problem it raises ("" code: none).
func bodyProblem(t *testing.T, body string, v any) (code, field string) {
	t.Helper()
	err := decode([]byte(body), v)
	if err == nil {
		return "", ""
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("%q: error %v is not an apiError", body, err)
	}
	if len(ae.fields) > 0 {
		field = ae.fields[0].Field
	}
	return ae.code, field
}

// TestDecodeRejectsBadText: NUL and the other control characters, invalid
// UTF-8 and unpaired surrogate escapes are refused in every string of a
// body, keys included, with invalid_text naming the field by its JSON path.
func TestDecodeRejectsBadText(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"NUL escape in a memo", `{"from":"a","to":"b","amount":"1","memo":"a\u0000b"}`, "memo"},
		{"newline escape", `{"from":"a","to":"b","amount":"1","memo":"a\nb"}`, "memo"},
		{"tab escape", `{"from":"a","to":"b","amount":"1","memo":"a\tb"}`, "memo"},
		{"DEL", "{\"from\":\"a\",\"to\":\"b\",\"amount\":\"1\",\"memo\":\"a\x7fb\"}", "memo"},
		{"escaped DEL", `{"from":"a\u007f","to":"b","amount":"1"}`, "from"},
		{"invalid UTF-8", "{\"from\":\"a\",\"to\":\"b\",\"amount\":\"1\",\"memo\":\"caf\xe9\"}", "memo"},
		{"truncated UTF-8", "{\"from\":\"a\xe2\x82\",\"to\":\"b\",\"amount\":\"1\"}", "from"},
		{"UTF-8 encoded surrogate", "{\"from\":\"a\xed\xa0\x80\",\"to\":\"b\",\"amount\":\"1\"}", "from"},
		{"lone high surrogate escape", `{"from":"a","to":"b","amount":"1","memo":"\ud800"}`, "memo"},
		{"lone low surrogate escape", `{"from":"a","to":"b","amount":"1","memo":"x\udc00y"}`, "memo"},
		{"reversed surrogate pair", `{"from":"a","to":"b","amount":"1","memo":"\udc00\ud800"}`, "memo"},
		{"nested in an array of objects", `{"name":"k","wallets":[{"wallet":"w","permissions":["read"]},{"wallet":"w\u0001","permissions":[]}]}`,
			"wallets[1].wallet"},
		{"array element", `{"name":"k","wallets":[{"wallet":"w","permissions":["read","x\u0000"]}]}`, "wallets[0].permissions[1]"},
		{"in a key", `{"name":"k","wal\u0000lets":[]}`, `["wal\x00lets"]`},
		{"in an unknown field", "{\"name\":\"k\",\"extra\":\"\xff\"}", "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any = new(transferRequest)
			if strings.Contains(tc.body, `"name"`) {
				v = new(createAPIKeyRequest)
			}
			code, field := bodyProblem(t, tc.body, v)
			if code != "invalid_text" || field != tc.field {
				t.Fatalf("%s: code %q field %q, want invalid_text naming %q", tc.body, code, field, tc.field)
			}
		})
	}
	// Text that is fine: non-ASCII letters, emoji as raw UTF-8 and as a
	// surrogate pair, U+FFFD written out, escaped quotes and slashes.
	for _, body := range []string{
		`{"from":"a","to":"b","amount":"1","memo":"café ☕ 😀 \ud83d\ude00 \ufffd \"q\" \/ \\"}`,
		"{\"from\":\"a\",\"to\":\"b\",\"amount\":\"1\",\"memo\":\"\xef\xbf\xbd\"}",
		`{"from":"a","to":"b","amount":"1","memo":""}`,
	} {
		var req transferRequest
		if code, field := bodyProblem(t, body, &req); code != "" {
			t.Errorf("%s: refused with %s (%s)", body, code, field)
		}
	}
}

// TestDecodeRejectsDuplicateKeys: a key given twice in one object, also
// in another case (encoding/json matches names regardless of case and
// keeps the last), is malformed_json naming the key, at any depth.
func TestDecodeRejectsDuplicateKeys(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"same key", `{"from":"a","to":"b","amount":"0.01","amount":"0.02"}`, "amount"},
		{"other case", `{"username":"nobody","USERNAME":"admin","password":"x"}`, "USERNAME"},
		{"mixed case", `{"username":"nobody","password":"x","uSeRnAmE":"admin"}`, "uSeRnAmE"},
		{"capitals", `{"name":"k","wallets":[],"roles":[],"ROLES":[]}`, "ROLES"},
		{"long s folds to s", `{"name":"k","wallets":[],"roles":[],"role\u017f":[]}`, `["role\u017f"]`},
		{"nested object", `{"name":"k","wallets":[{"wallet":"w","permissions":[],"Wallet":"x"}]}`, "wallets[0].Wallet"},
		{"unknown key twice", `{"name":"k","x":1,"x":2}`, "x"},
		{"deep", `{"name":"k","wallets":[{"wallet":"w","permissions":[]},{"wallet":"a","wallet":"b"}]}`, "wallets[1].wallet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any = new(loginRequest)
			switch {
			case strings.Contains(tc.body, `"from"`):
				v = new(transferRequest)
			case strings.Contains(tc.body, `"name"`):
				v = new(createAPIKeyRequest)
			}
			code, field := bodyProblem(t, tc.body, v)
			if code != "malformed_json" || field != tc.field {
				t.Fatalf("%s: code %q field %q, want malformed_json naming %q", tc.body, code, field, tc.field)
			}
		})
	}
	// The same key in different objects is fine; so is "ſ" vs "s" only
	// when they are different objects.
	var req createAPIKeyRequest
	if code, field := bodyProblem(t, `{"name":"k","wallets":[{"wallet":"a","permissions":[]},{"wallet":"b","permissions":[]}]}`, &req); code != "" {
		t.Fatalf("distinct objects refused: %s %s", code, field)
	}
	if foldKey("ſecret") != foldKey("SECRET") || foldKey("\u212a") != foldKey("k") || foldKey("a") == foldKey("b") {
		t.Fatal("foldKey does not fold like encoding/json")
	}
}

// TestDecodeTopLevelMustBeAnObject: null, arrays and scalars are not a
// request object; the existing guarantees (unknown fields, trailing data,
// size, empty body) hold.
func TestDecodeTopLevelMustBeAnObject(t *testing.T) {
	for _, tc := range []struct{ body, code string }{
		{`null`, "malformed_json"},
		{` null `, "malformed_json"},
		{`[]`, "malformed_json"},
		{`[{"username":"a"}]`, "malformed_json"},
		{`"x"`, "malformed_json"},
		{`1`, "malformed_json"},
		{`true`, "malformed_json"},
		{``, "malformed_json"},
		{`   `, "malformed_json"},
		{`{`, "malformed_json"},
		{`{"username":`, "malformed_json"},
		{`{"username":"a"} {}`, "malformed_json"},
		{`{"username":"a"} trailing`, "malformed_json"},
		{`{"username":"a","extra":1}`, "unknown_field"},
		{`{"username":1}`, "validation_failed"},
		{`{"username":"a",}`, "malformed_json"},
		{`{"username":"a"}`, ""},
		{`{}`, ""},
		{"{\"username\":\"" + strings.Repeat("a", maxBody) + "\"}", "body_too_large"},
	} {
		var req loginRequest
		if code, _ := bodyProblem(t, tc.body, &req); code != tc.code {
			t.Errorf("%.40q: code %q, want %q", tc.body, code, tc.code)
		}
	}
}

// FuzzDecode: the strict decoder never panics, every refusal is a 4xx
// problem with a known code, and whatever it accepts obeys its rules: one
// JSON object, valid UTF-8, no control characters in any string, no two
// keys of one object equal regardless of case.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"k","roles":["admin"],"wallets":[{"wallet":"w","permissions":["read"]}]}`,
		`{"name":"k","name":"k"}`, `{"name":"k","NAME":"k"}`, `{"name":"\u0000"}`, `{"name":"\ud800"}`,
		"{\"name\":\"\xff\"}", `null`, `[]`, `{"wallets":[{"wallet":"a","Wallet":"b"}]}`, `{"name":"\ud83d\ude00"}`,
		`{"name":"k"} x`, `{"x":{"y":[1,{"z":null}]}}`, `{"name":"\u212a"}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{"malformed_json": true, "invalid_text": true, "unknown_field": true,
		"validation_failed": true, "body_too_large": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createAPIKeyRequest
		err := decode(body, &req)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || !codes[ae.code] {
				t.Fatalf("%q: refused with %v", body, err)
			}
			if ae.code == "invalid_text" && utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`)) &&
				!bytes.ContainsFunc(body, func(r rune) bool { return r == 0x7f }) && !hasEscapedControl(body) {
				t.Fatalf("%q: invalid_text without invalid UTF-8, control characters or \\u escapes", body)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("%q: accepted invalid UTF-8", body)
		}
		if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
			t.Fatalf("%q: accepted a body that is not an object", body)
		}
		// An independent look at what was accepted: every object's keys
		// distinct regardless of case, no control characters in strings.
		dec := json.NewDecoder(bytes.NewReader(body))
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: accepted, but encoding/json says %v", body, err)
		}
		keys := countKeys(t, body)
		if n := checkAccepted(t, v); n != keys {
			t.Fatalf("%q: %d keys written, %d distinct regardless of case: a duplicate was accepted", body, keys, n)
		}
	})
}

// hasEscapedControl reports whether body has a JSON escape of a control
// character (\n, \t, \r, \b, \f).
func hasEscapedControl(body []byte) bool {
	for i := 0; i+1 < len(body); i++ {
		if body[i] == '\\' {
			if strings.IndexByte("ntrbf", body[i+1]) >= 0 {
				return true
			}
			i++
		}
	}
	return false
}

// countKeys counts the object keys of body's first JSON value, as written.
func countKeys(t *testing.T, body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct{ object, key bool }
	var stack []frame
	n := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		top := len(stack) - 1
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, frame{object: tok == json.Delim('{'), key: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			if len(stack) == 0 {
				return n
			}
			stack[len(stack)-1].key = true
			continue
		}
		if stack[top].object && stack[top].key {
			n++
			stack[top].key = false
			continue
		}
		stack[top].key = true
	}
}

// checkAccepted fails on a control character in a decoded string and
// returns the number of object keys of v distinct regardless of case.
func checkAccepted(t *testing.T, v any) int {
	switch v := v.(type) {
	case string:
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted the control character in %q", v)
		}
	case []any:
		n := 0
		for _, e := range v {
			n += checkAccepted(t, e)
		}
		return n
	case map[string]any:
		seen := map[string]bool{}
		n := 0
		for k, e := range v {
			checkAccepted(t, k)
			for s := range seen {
				if strings.EqualFold(s, k) {
					t.Fatalf("keys %q and %q accepted in one object", s, k)
				}
			}
			seen[k] = true
			n += 1 + checkAccepted(t, e)
		}
		return n
	}
	return 0
}
