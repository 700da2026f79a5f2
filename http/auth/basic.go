package auth

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on Authorization headers; anything longer is refused unread.
const (
	// MaxBasicHeaderLen bounds a whole "Basic ..." header.
	MaxBasicHeaderLen = 4 << 10
	// MaxBearerTokenLen bounds the token of a "Bearer ..." header.
	MaxBearerTokenLen = 8 << 10
)

// ParseBasic parses an RFC 7617 Authorization header, "Basic " followed by
// the padded standard base64 of "user:password". The scheme is matched
// case-insensitively and followed by exactly one space. The user is
// everything before the first colon and must not be empty; the password,
// which may be empty, is the rest and may contain colons. Both must be
// UTF-8 without control characters, and the header at most
// MaxBasicHeaderLen bytes; anything else is not ok.
func ParseBasic(header string) (user, password string, ok bool) {
	if len(header) > MaxBasicHeaderLen {
		return "", "", false
	}
	scheme, creds, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") || !isBase64(creds) {
		return "", "", false
	}
	// Strict: no alternative encodings of the same bytes.
	raw, err := base64.StdEncoding.Strict().DecodeString(creds)
	if err != nil || !utf8.Valid(raw) {
		return "", "", false
	}
	s := string(raw)
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", "", false
	}
	user, password, found = strings.Cut(s, ":")
	if !found || user == "" {
		return "", "", false
	}
	return user, password, true
}

// ParseBearer parses an RFC 6750 Authorization header, "Bearer " and a
// b64token (letters, digits, "-._~+/", then optional trailing "="). The
// scheme is matched case-insensitively and followed by exactly one space;
// the token is 1 to MaxBearerTokenLen bytes.
func ParseBearer(header string) (token string, ok bool) {
	if len(header) > len("Bearer ")+MaxBearerTokenLen {
		return "", false
	}
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || !isB64Token(token) {
		return "", false
	}
	return token, true
}

// isBase64 reports whether s holds only the standard base64 alphabet and
// padding. The decoder would skip CR and LF; they are refused here.
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '+' && c != '/' && c != '=' {
			return false
		}
	}
	return true
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !isAlnum(c) && !strings.ContainsRune("-._~+/", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
