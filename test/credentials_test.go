package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// auditedEvent is an event as /events, /events/stream and /streams/{s}
// show it.
type auditedEvent struct {
	ID       string          `json:"id"`
	Position uint64          `json:"position"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Hash     string          `json:"hash"`
	Redacted bool            `json:"redacted"`
}

// stored rebuilds the stored event from what the auditor was shown.
func (a auditedEvent) stored(t *testing.T) eventstore.Event {
	t.Helper()
	e := eventstore.Event{Stream: a.Stream, Revision: a.Revision, Position: a.Position, Type: a.Type, Data: a.Data,
		Created: a.Time}
	var err error
	if e.ID, err = uuid.Parse(a.ID); err != nil {
		t.Fatalf("event %d: id %q: %v", a.Position, a.ID, err)
	}
	if err := json.Unmarshal(a.Metadata, &e.Metadata); err != nil {
		t.Fatalf("event %d: metadata: %v", a.Position, err)
	}
	if err := e.Hash.UnmarshalText([]byte(a.Hash)); err != nil {
		t.Fatalf("event %d: hash: %v", a.Position, err)
	}
	return e
}

// TestAuditorSeesNoCredentials: after a password login with refresh, an
// API key, a Graphene import (upgraded at login) and a user whose events
// an older version wrote with hashes in the clear, an auditor reads
// /events, /events/stream and /streams/user-X: no password hash, Graphene
// hash or salt, API key hash or refresh token id that the store holds
// appears in any body, and the auditor still verifies every hash chain from
// the bodies alone (the old clear events, shown redacted, as links). After a
// restart, logins, the API key and refresh rotation work (users rebuilt from
// the sealed log).
func TestAuditorSeesNoCredentials(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	env := []string{"COINLEDGER_DATA_DIR=" + dir}

	// A Graphene import, with the CLI.
	grapheneHash, grapheneSalt := "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=", "INDdM6iCi/8="
	file := filepath.Join(dir, "api-access.json")
	b, _ := json.Marshal(map[string]any{"permission_map": []any{[]any{"bytemaster", map[string]any{
		"password_hash_b64": grapheneHash, "password_salt_b64": grapheneSalt, "allowed_apis": []string{"database_api"}}}}})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli(t, "", env, "users", "import-graphene", file, "-wallet", "hot"); !strings.Contains(out, "imported bytemaster") {
		t.Fatalf("import: %s", out)
	}

	// User olga as a version before sealing wrote her: hashes in the clear.
	olgaHash, _ := bcrypt.GenerateFromPassword([]byte("password-olga"), bcrypt.MinCost)
	var raw [32]byte
	rand.Read(raw[:])
	olgaKey := users.APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now().UTC()
	at, exp := now.Format(time.RFC3339Nano), now.Add(time.Hour).Format(time.RFC3339Nano)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Append(ctx, "user-olga", eventstore.NoStream,
		eventstore.EventData{Type: identity.TypeUserRegistered, Data: []byte(`{"username":"olga","password_hash":"` + string(olgaHash) + `","roles":[]}`)},
		eventstore.EventData{Type: identity.TypeAPIKeyIssued, Data: []byte(`{"id":"old-key","name":"bot","hash":"` +
			users.HashAPIKey(olgaKey) + `","roles":[],"wallets":[],"at":"` + at + `"}`)},
		eventstore.EventData{Type: identity.TypeRefreshIssued, Data: []byte(`{"family":"old-fam","token_id":"old-refresh-token-id-0123456789","at":"` +
			at + `","expires_at":"` + exp + `"}`)})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, admin := adminServer(t, dir)
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "carol", "email": "carol@example.com",
		"password": "password-carol"})
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "audrey", "email": "audrey@example.com",
		"password": "password-audrey", "roles": []string{"auditor"}})
	carol := newClient(t, s)
	var tok tokens
	carol.expect(http.StatusOK, "POST", "/auth/login", map[string]string{"username": "carol", "password": "password-carol"}).JSON(t, &tok)
	carol.expect(http.StatusOK, "POST", "/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": tok.RefreshToken}).JSON(t, &tok)
	carol.token = tok.AccessToken
	var key struct{ Key string }
	carol.expect(http.StatusCreated, "POST", "/api-keys", map[string]any{"name": "bot", "wallets": []any{}}).JSON(t, &key)
	newClient(t, s).login("bytemaster", "supersecret") // the Graphene hash is upgraded: PasswordChanged
	newClient(t, s).login("olga", "password-olga")     // clear hashes still load
	olga := newClient(t, s)
	olga.token = olgaKey
	olga.expect(http.StatusOK, "GET", "/me", nil)

	// What the auditor is shown.
	auditor := newClient(t, s)
	auditor.login("audrey", "password-audrey")
	var bodies []string
	var all []auditedEvent
	for from := uint64(1); ; {
		r := auditor.expect(http.StatusOK, "GET", "/events?limit=1000&from="+strconv.FormatUint(from, 10), nil)
		bodies = append(bodies, string(r.Body))
		var page struct {
			Events []auditedEvent
			Next   uint64
		}
		r.JSON(t, &page)
		if len(page.Events) == 0 {
			break
		}
		all, from = append(all, page.Events...), page.Next
	}
	streams := map[string][]auditedEvent{}
	for _, name := range []string{"carol", "bytemaster", "olga", "admin", "audrey"} {
		r := auditor.expect(http.StatusOK, "GET", "/streams/user-"+name+"?limit=1000", nil)
		bodies = append(bodies, string(r.Body))
		var page struct{ Events []auditedEvent }
		r.JSON(t, &page)
		streams[name] = page.Events
	}
	bodies = append(bodies, sseBody(t, s, auditor.token, all[len(all)-1].Position))

	// What the store holds, read with the data directory's seal key.
	s.Stop(t)
	secrets := storedCredentials(t, dir)
	secrets = append(secrets, grapheneHash, grapheneSalt, "$2a$", "$2b$", "$2y$", "$argon2", "legacy-sha256")
	if len(secrets) < 16 {
		t.Fatalf("only %d credentials found in the store", len(secrets))
	}
	for _, body := range bodies {
		for _, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Fatalf("the auditor was shown %q in:\n%s", secret, body)
			}
		}
	}

	// The auditor verifies every chain from the global log, and each stream page.
	verify := func(what string, events []auditedEvent) *eventstore.Verifier {
		v := eventstore.NewVerifier()
		for _, a := range events {
			e := a.stored(t)
			var err error
			if a.Redacted {
				err = v.Link(e)
			} else {
				err = v.Verify(e)
			}
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		return v
	}
	v := verify("/events", all)
	if v.Linked != 3 || v.Events != uint64(len(all))-3 {
		t.Fatalf("/events: %d verified, %d linked of %d; want only olga's 3 old events linked", v.Events, v.Linked, len(all))
	}
	for name, events := range streams {
		verify("/streams/user-"+name, events)
	}
	for _, a := range all {
		if a.Redacted != (a.Stream == "user-olga" && a.Revision < 3) {
			t.Fatalf("event %s@%d redacted: %v", a.Stream, a.Revision, a.Redacted)
		}
	}

	// A restart rebuilds every user from the sealed log.
	s2, _ := adminServer(t, dir)
	newClient(t, s2).login("carol", "password-carol")
	newClient(t, s2).login("bytemaster", "supersecret")
	newClient(t, s2).login("olga", "password-olga")
	c2 := newClient(t, s2)
	c2.token = key.Key
	c2.expect(http.StatusOK, "GET", "/me", nil)
	c2.token = olgaKey
	c2.expect(http.StatusOK, "GET", "/me", nil)
	c2.token = ""
	c2.expect(http.StatusOK, "POST", "/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": tok.RefreshToken})
}

// storedCredentials returns every credential value the user events of the
// store in dir hold, opened with the data directory's seal key.
func storedCredentials(t *testing.T, dir string) []string {
	t.Helper()
	ctx := context.Background()
	secret, err := os.ReadFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.New([]byte(strings.TrimSpace(string(secret))))
	if err != nil {
		t.Fatal(err)
	}
	codec := eventstore.NewCodecOf(identity.Events()...)
	fields := identity.CredentialFields()
	codec.Seal(keys, eventstore.Sealing(fields))
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	events, err := store.ReadAll(ctx, 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		if !strings.HasPrefix(e.Stream, "user-") || len(fields[e.Type]) == 0 {
			continue
		}
		de, err := codec.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(de)
		var m map[string]any
		json.Unmarshal(b, &m)
		for _, f := range fields[e.Type] {
			if v, _ := m[f].(string); len(v) >= 8 {
				out = append(out, v)
			} else {
				t.Fatalf("%s: credential field %s is %q", e, f, m[f])
			}
		}
	}
	return out
}

// sseBody reads /events/stream from the start up to position last and
// returns what it read.
func sseBody(t *testing.T, s *Server, token string, last uint64) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/events/stream?from=1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	atLast := false
	for sc.Scan() {
		line := sc.Text()
		body.WriteString(line + "\n")
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			atLast = id == strconv.FormatUint(last, 10)
		}
		if atLast && strings.HasPrefix(line, "data: ") {
			return body.String()
		}
	}
	t.Fatalf("event stream ended before position %d: %v", last, sc.Err())
	return ""
}
