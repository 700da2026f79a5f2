package auth

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseBasic(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		user, pass   string
		ok           bool
	}{
		{"plain", basicHeader("alice", "s3cret"), "alice", "s3cret", true},
		{"rfc 7617 example", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame", true},
		{"scheme case", "bAsIc " + b64("alice:pw"), "alice", "pw", true},
		{"colon in password", basicHeader("alice", "a:b::c"), "alice", "a:b::c", true},
		{"empty password", basicHeader("alice", ""), "alice", "", true},
		{"utf-8", basicHeader("zoë", "пароль €"), "zoë", "пароль €", true},
		{"spaces kept", basicHeader(" bob ", " pw "), " bob ", " pw ", true},
		{"empty user", basicHeader("", "pw"), "", "", false},
		{"no colon", "Basic " + b64("alice"), "", "", false},
		{"empty credentials", "Basic ", "", "", false},
		{"no credentials", "Basic", "", "", false},
		{"other scheme", "Bearer " + b64("alice:pw"), "", "", false},
		{"scheme prefix", "Basically " + b64("alice:pw"), "", "", false},
		{"two spaces", "Basic  " + b64("alice:pw"), "", "", false},
		{"tab", "Basic\t" + b64("alice:pw"), "", "", false},
		{"trailing space", basicHeader("alice", "pw") + " ", "", "", false},
		{"newline inside base64", "Basic " + b64("alice:pw")[:4] + "\n" + b64("alice:pw")[4:], "", "", false},
		{"missing padding", "Basic " + strings.TrimRight(b64("alice:p"), "="), "", "", false},
		{"no padding needed", "Basic YWxpY2U6cHdx", "alice", "pwq", true},
		{"non-canonical trailing bits", "Basic YWxpY2U6cHf=", "", "", false},
		{"url alphabet", "Basic " + base64.URLEncoding.EncodeToString([]byte("a:>>>?")), "", "", false},
		{"not base64", "Basic alice:pw", "", "", false},
		{"invalid utf-8", "Basic " + b64("al\xffce:pw"), "", "", false},
		{"invalid utf-8 in password", "Basic " + b64("alice:p\xc3"), "", "", false},
		{"nul in user", basicHeader("al\x00ice", "pw"), "", "", false},
		{"newline in password", basicHeader("alice", "pw\n"), "", "", false},
		{"del", basicHeader("alice", "pw\x7f"), "", "", false},
		{"c1 control", basicHeader("alice", "pw\u0085"), "", "", false},
		{"longest allowed", basicHeader("u", strings.Repeat("p", 3064)), "u", strings.Repeat("p", 3064), true},
		{"too long", basicHeader("u", strings.Repeat("p", 3065)), "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass, ok := ParseBasic(tc.header)
			if ok != tc.ok || user != tc.user || pass != tc.pass {
				t.Fatalf("ParseBasic(%q) = %q, %q, %v; want %q, %q, %v",
					tc.header, user, pass, ok, tc.user, tc.pass, tc.ok)
			}
		})
	}
}

func TestParseBearer(t *testing.T) {
	long := strings.Repeat("a", MaxBearerTokenLen)
	for _, tc := range []struct {
		name, header, token string
		ok                  bool
	}{
		{"jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig-_", "eyJhbGciOiJIUzI1NiJ9.e30.sig-_", true},
		{"scheme case", "bearer abc", "abc", true},
		{"all chars", "BEARER aZ09-._~+/==", "aZ09-._~+/==", true},
		{"longest", "Bearer " + long, long, true},
		{"too long", "Bearer " + long + "a", "", false},
		{"empty", "Bearer ", "", false},
		{"no token", "Bearer", "", false},
		{"only padding", "Bearer ==", "", false},
		{"padding inside", "Bearer ab=c", "", false},
		{"two spaces", "Bearer  abc", "", false},
		{"trailing space", "Bearer abc ", "", false},
		{"two tokens", "Bearer abc def", "", false},
		{"tab", "Bearer\tabc", "", false},
		{"other scheme", "Basic abc", "", false},
		{"scheme prefix", "Bearerx abc", "", false},
		{"comma", "Bearer abc,def", "", false},
		{"quote", `Bearer "abc"`, "", false},
		{"non-ascii", "Bearer äbc", "", false},
		{"nul", "Bearer ab\x00c", "", false},
		{"empty header", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, ok := ParseBearer(tc.header)
			if ok != tc.ok || token != tc.token {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q, %v", tc.header, token, ok, tc.token, tc.ok)
			}
		})
	}
}

// validBasic is the specification of what ParseBasic must accept.
func validBasic(user, pass string) bool {
	ok := func(s string) bool { return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) }
	return user != "" && !strings.Contains(user, ":") && ok(user) && ok(pass) &&
		len(basicHeader(user, pass)) <= MaxBasicHeaderLen
}

func FuzzParseBasic(f *testing.F) {
	f.Add("alice", "s3cret", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
	f.Add("", "a:b", "basic Og==")
	f.Add("zoë", "p\x00w", "Basic YWxpY2U6cHf=")
	f.Add("a:b", "\xff", "Basic \r\nYWxpY2U6cHdx")
	f.Add("0:", "0", "Basic MDo6MA==")
	f.Fuzz(func(t *testing.T, user, pass, header string) {
		// Round trip: exactly the valid pairs parse back unchanged. (A
		// user with a colon may still parse, as a different split.)
		u, p, ok := ParseBasic(basicHeader(user, pass))
		same := ok && u == user && p == pass
		if want := validBasic(user, pass); same != want {
			t.Fatalf("encode(%q, %q) parsed as %q, %q, %v; want the same back: %v", user, pass, u, p, ok, want)
		}

		// Any header: whatever parses is valid and re-encodes to the same
		// header up to the scheme's case.
		u, p, ok = ParseBasic(header)
		if !ok {
			if u != "" || p != "" {
				t.Fatalf("refused %q but returned %q, %q", header, u, p)
			}
			return
		}
		if !validBasic(u, p) {
			t.Fatalf("ParseBasic(%q) accepted invalid %q, %q", header, u, p)
		}
		if again := basicHeader(u, p); !strings.EqualFold(again[:6], header[:6]) || again[6:] != header[6:] {
			t.Fatalf("ParseBasic(%q) = %q, %q, which encodes as %q", header, u, p, again)
		}
	})
}

func FuzzParseBearer(f *testing.F) {
	f.Add("Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
	f.Add("bearer a==")
	f.Add("Bearer =a")
	f.Add("Bearer  a b")
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := ParseBearer(header)
		if !ok {
			if token != "" {
				t.Fatalf("refused %q but returned %q", header, token)
			}
			return
		}
		if token == "" || len(token) > MaxBearerTokenLen || !isB64Token(token) {
			t.Fatalf("ParseBearer(%q) = %q", header, token)
		}
		if !strings.EqualFold(header[:7], "Bearer ") || header[7:] != token {
			t.Fatalf("ParseBearer(%q) = %q, not the header's token", header, token)
		}
		if again, ok := ParseBearer("Bearer " + token); !ok || again != token {
			t.Fatalf("token %q does not round-trip: %q, %v", token, again, ok)
		}
		// A checked character set, independent of isB64Token.
		body := strings.TrimRight(token, "=")
		for _, r := range body {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", r) {
				t.Fatalf("token %q has %q", token, r)
			}
		}
	})
}
