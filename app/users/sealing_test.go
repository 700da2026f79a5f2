package users_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"golang.org/x/crypto/bcrypt"
)

// TestCredentialsAreSealedInTheLog: password hashes (bcrypt, argon2id,
// Graphene's salt and hash), API key hashes and refresh token ids are in no
// stored event in the clear; a service with the same key rebuilds every
// user from the log (logins, keys, refresh rotation work); one with another
// key refuses to load them instead of running on empty hashes.
func TestCredentialsAreSealedInTheLog(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	if _, err := e.svc.BootstrapAdmin(ctx, "admin-password-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.BootstrapAdmin(ctx, "admin-password-2", nil); err != nil { // PasswordChanged
		t.Fatal(err)
	}
	_, secret, err := e.svc.IssueAPIKey(ctx, admin, "alice", "bot", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(4 * time.Hour)
	if err := e.svc.StartSession(ctx, admin, "alice", "fam-1", "refresh-token-id-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "fam-1", "refresh-token-id-1", "refresh-token-id-2", exp); err != nil {
		t.Fatal(err)
	}
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ImportGraphene(ctx, admin, m, users.ImportOptions{Wallet: "main"}); err != nil {
		t.Fatal(err)
	}
	legacyMarker := e.mustGet(t, "bytemaster").PasswordHash
	if _, err := e.svc.Authenticate(ctx, "bytemaster", "supersecret"); err != nil { // upgrades to bcrypt
		t.Fatal(err)
	}
	long := strings.Repeat("a long graphene password ", 4) // argon2id on upgrade
	lm, err := graphene.Parse([]byte(`{"permission_map": [["longpw", {"password_hash_b64": "` +
		hashB64(long, []byte("12345678")) + `", "password_salt_b64": "MTIzNDU2Nzg=", "allowed_apis": []}]]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ImportGraphene(ctx, admin, lm, users.ImportOptions{Wallet: "main"}); err != nil {
		t.Fatal(err)
	}
	longMarker := e.mustGet(t, "longpw").PasswordHash
	if _, err := e.svc.Authenticate(ctx, "longpw", long); err != nil {
		t.Fatal(err)
	}

	alice := e.mustGet(t, "alice")
	keys := alice.APIKeys()
	secrets := map[string]string{
		"alice's bcrypt hash":     alice.PasswordHash,
		"admin's changed hash":    e.mustGet(t, "admin").PasswordHash,
		"api key hash":            keys[0].Hash,
		"refresh token 1":         "refresh-token-id-1",
		"refresh token 2":         "refresh-token-id-2",
		"graphene marker":         legacyMarker,
		"graphene hash":           "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
		"graphene salt":           "INDdM6iCi/8=",
		"upgraded bcrypt hash":    e.mustGet(t, "bytemaster").PasswordHash,
		"long graphene marker":    longMarker,
		"upgraded argon2id hash":  e.mustGet(t, "longpw").PasswordHash,
		"any bcrypt hash":         "$2a$",
		"any argon2id hash":       "$argon2id$",
		"graphene marker (start)": "legacy-sha256$",
	}
	if !strings.HasPrefix(secrets["upgraded argon2id hash"], "$argon2id$") || !strings.HasPrefix(alice.PasswordHash, "$2") {
		t.Fatalf("hashes: %q %q", secrets["upgraded argon2id hash"], alice.PasswordHash)
	}
	all, err := e.store.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	v := eventstore.NewVerifier()
	for _, ev := range all {
		for what, s := range secrets {
			if strings.Contains(string(ev.Data), s) {
				t.Errorf("%s is in the clear in %s: %s", what, ev, ev.Data)
			}
		}
		if strings.Contains(string(ev.Data), `"sealed":"seal1:`) {
			sealed++
		}
		if err := v.Verify(ev); err != nil {
			t.Error(err)
		}
	}
	if sealed < 9 {
		t.Errorf("%d sealed events, want at least 9", sealed)
	}

	// Another instance with the same key: state rebuilt from the log.
	again := e.fresh()
	if _, err := again.Authenticate(ctx, "alice", "password-alice"); err != nil {
		t.Fatalf("login after a restart: %v", err)
	}
	if _, err := again.Authenticate(ctx, "admin", "admin-password-2"); err != nil {
		t.Fatalf("changed password after a restart: %v", err)
	}
	if _, err := again.Authenticate(ctx, "longpw", long); err != nil {
		t.Fatalf("argon2id login after a restart: %v", err)
	}
	if owner, _, err := again.AuthenticateAPIKey(ctx, secret); err != nil || owner != "alice" {
		t.Fatalf("api key after a restart: %q %v", owner, err)
	}
	if err := again.Rotate(ctx, admin, "alice", "fam-1", "refresh-token-id-2", "refresh-token-id-3", exp); err != nil {
		t.Fatalf("rotation after a restart: %v", err)
	}
	if err := again.Rotate(ctx, admin, "alice", "fam-1", "refresh-token-id-1", "x", exp); !errors.Is(err, identity.ErrRefreshReused) {
		t.Fatalf("reuse of a spent token after a restart: %v", err)
	}

	// A service with another key refuses to load sealed users.
	wrong := users.NewWithOptions(e.store, users.Options{BcryptCost: bcrypt.MinCost, Now: e.clock.Now, Keyring: seal.Random()})
	if _, err := wrong.Authenticate(ctx, "alice", "password-alice"); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("login with the wrong seal key: %v", err)
	}
}

// TestClearCredentialsWrittenBeforeSealingStillWork: user events written
// with their hashes in the clear (by a version before sealing) load: the
// user logs in, uses the API key and rotates the refresh token.
func TestClearCredentialsWrittenBeforeSealingStillWork(t *testing.T) {
	e := newEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("password-olga"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	secret := users.APIKeyPrefix + strings.Repeat("A", 43)
	at := t0.Format(time.RFC3339Nano)
	exp := t0.Add(4 * time.Hour).Format(time.RFC3339Nano)
	old := []eventstore.EventData{
		{Type: identity.TypeUserRegistered, Data: []byte(`{"username":"olga","password_hash":"` + string(hash) + `","roles":[]}`)},
		{Type: identity.TypeAPIKeyIssued, Data: []byte(`{"id":"k1","name":"bot","hash":"` + users.HashAPIKey(secret) +
			`","roles":[],"wallets":[],"at":"` + at + `"}`)},
		{Type: identity.TypeRefreshIssued, Data: []byte(`{"family":"f1","token_id":"t1","at":"` + at + `","expires_at":"` + exp + `"}`)},
	}
	if _, err := e.store.Append(ctx, identity.Stream("olga"), eventstore.NoStream, old...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, "olga", "password-olga"); err != nil {
		t.Fatalf("login: %v", err)
	}
	if owner, _, err := e.svc.AuthenticateAPIKey(ctx, secret); err != nil || owner != "olga" {
		t.Fatalf("api key: %q %v", owner, err)
	}
	if err := e.svc.Rotate(ctx, admin, "olga", "f1", "t1", "t2", t0.Add(5*time.Hour)); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	events := e.stream(t, "olga")
	if last := events[len(events)-1]; strings.Contains(string(last.Data), `"t2"`) || !strings.Contains(string(last.Data), `"sealed"`) {
		t.Fatalf("the rotation after the old events is not sealed: %s", last.Data)
	}
}
