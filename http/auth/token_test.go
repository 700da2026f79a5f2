package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func issuer(t testing.TB) *Issuer {
	i, err := NewIssuer(Key{ID: "k1", Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestIssueVerify(t *testing.T) {
	i := issuer(t)
	tok, ttl, err := i.Issue(Access, "alice", []string{"admin"}, "", "")
	if err != nil || ttl != 30*time.Minute {
		t.Fatal(err, ttl)
	}
	c, err := i.Verify(tok, Access)
	if err != nil || c.Subject != "alice" || c.Roles[0] != "admin" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := i.Verify(tok, Refresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("access token accepted as refresh: %v", err)
	}
}

func TestRejects(t *testing.T) {
	i := issuer(t)
	now := time.Now()
	i.Now = func() time.Time { return now.Add(-time.Hour) }
	expired, _, _ := i.Issue(Access, "alice", nil, "", "")
	i.Now = time.Now
	none := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Kind: Access, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := NewIssuer(Key{ID: "k1", Secret: []byte(strings.Repeat("x", 32))})
	forged, _, _ := other.Issue(Access, "alice", []string{"admin"}, "", "")
	for name, tok := range map[string]string{"expired": expired, "alg none": noneTok, "forged": forged,
		"garbage": "a.b.c", "empty": ""} {
		if _, err := i.Verify(tok, Access); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err %v, want ErrInvalidToken", name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	i := issuer(f)
	tok, _, _ := i.Issue(Access, "alice", nil, "", "")
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := i.Verify(s, Access)
		if err == nil && (c.Subject == "" || c.Kind != Access) {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}

// TestKeyRotation: tokens signed with a previous key still verify while it
// is configured, and stop when it is dropped.
func TestKeyRotation(t *testing.T) {
	old := KeyOf([]byte(strings.Repeat("o", 32)))
	next := KeyOf([]byte(strings.Repeat("n", 32)))
	before, _ := NewIssuer(old)
	tok, _, _ := before.Issue(Access, "alice", nil, "", "")
	during, _ := NewIssuer(next, old)
	if _, err := during.Verify(tok, Access); err != nil {
		t.Fatalf("old token during rotation: %v", err)
	}
	fresh, _, _ := during.Issue(Access, "alice", nil, "", "")
	after, _ := NewIssuer(next)
	if _, err := after.Verify(fresh, Access); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	if _, err := after.Verify(tok, Access); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("old token after its key was dropped: %v", err)
	}
}

// TestVerifiedTokenExpiresFromTheCache: a token verified once is
// remembered, but expires on time, keeps its kind, and hands out a copy.
func TestVerifiedTokenExpiresFromTheCache(t *testing.T) {
	i := issuer(t)
	now := time.Now()
	i.Now = func() time.Time { return now }
	tok, ttl, _ := i.Issue(Access, "alice", []string{"admin"}, "", "")
	c, err := i.Verify(tok, Access)
	if err != nil {
		t.Fatal(err)
	}
	c.Roles[0] = "changed by a caller"
	if c, err = i.Verify(tok, Access); err != nil || c.Roles[0] != "admin" {
		t.Fatalf("second verify: %+v %v", c, err)
	}
	if _, err := i.Verify(tok, Refresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("remembered access token accepted as refresh: %v", err)
	}
	now = now.Add(ttl + i.Leeway - time.Second)
	if _, err := i.Verify(tok, Access); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := i.Verify(tok, Access); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token from the cache: %v", err)
	}
	if _, err := i.Verify(tok, Access); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token verified again: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	i := issuer(b)
	tok, _, _ := i.Issue(Access, "alice", []string{"admin"}, "", "")
	for b.Loop() {
		if _, err := i.Verify(tok, Access); err != nil {
			b.Fatal(err)
		}
	}
}
