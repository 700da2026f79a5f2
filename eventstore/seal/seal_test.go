package seal_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore/seal"
)

func mustKeyring(t *testing.T, secrets ...string) *seal.Keyring {
	t.Helper()
	bs := make([][]byte, len(secrets))
	for i, s := range secrets {
		bs[i] = []byte(s)
	}
	k, err := seal.New(bs...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	secretA = "0123456789abcdef0123456789abcdef-a"
	secretB = "0123456789abcdef0123456789abcdef-b"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeyring(t, secretA)
	plain := []byte(`{"password_hash":"$2a$10$abcdefghijklmnopqrstuv"}`)
	box, err := k.Seal(plain, []byte("identity.user_registered"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(box, "seal1:"+seal.ID([]byte(secretA))+":") || strings.Contains(box, "$2a$") {
		t.Fatalf("box %q", box)
	}
	again, _ := k.Seal(plain, []byte("identity.user_registered"))
	if again == box {
		t.Fatal("two seals of the same plaintext are equal: the nonce is not random")
	}
	got, err := k.Open(box, []byte("identity.user_registered"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	k := mustKeyring(t, secretA)
	box, _ := k.Seal([]byte("secret"), []byte("aad"))
	i := strings.LastIndexByte(box, ':') + 5
	flipped := box[:i] + string(box[i]^1) + box[i+1:]
	for _, c := range []struct {
		name string
		k    *seal.Keyring
		box  string
		aad  string
	}{
		{"other additional data", k, box, "other"},
		{"other key", mustKeyring(t, secretB), box, "aad"},
		{"tampered", k, flipped, "aad"},
		{"truncated", k, box[:len(box)-4], "aad"},
		{"not a box", k, "$2a$10$abc", "aad"},
		{"no key id", k, "seal1:abc", "aad"},
		{"bad base64", k, "seal1:" + seal.ID([]byte(secretA)) + ":!!!", "aad"},
	} {
		if _, err := c.k.Open(c.box, []byte(c.aad)); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", c.name, err)
		}
	}
}

// TestKeyringRotation: a keyring seals with its first secret and still
// opens what an older secret sealed.
func TestKeyringRotation(t *testing.T) {
	old := mustKeyring(t, secretA)
	box, _ := old.Seal([]byte("x"), nil)
	rotated := mustKeyring(t, secretB, secretA)
	if got, err := rotated.Open(box, nil); err != nil || string(got) != "x" {
		t.Fatalf("open an old box: %q %v", got, err)
	}
	nbox, _ := rotated.Seal([]byte("y"), nil)
	if !strings.Contains(nbox, seal.ID([]byte(secretB))) {
		t.Fatalf("new box not sealed by the first secret: %s", nbox)
	}
	if _, err := old.Open(nbox, nil); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("old keyring opened a box of the new secret: %v", err)
	}
}

func TestNewRefusesShortSecrets(t *testing.T) {
	if _, err := seal.New([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
	if _, err := seal.New(); err == nil {
		t.Fatal("no secret was accepted")
	}
}
