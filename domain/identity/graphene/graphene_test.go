package graphene

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
)

// seedExample is the api-access.json example of Graphene's documentation:
// bytemaster's password is "supersecret".
const seedExample = `{
   "permission_map" :
   [
      [
         "bytemaster",
         {
            "password_hash_b64" : "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
            "password_salt_b64" : "INDdM6iCi/8=",
            "allowed_apis" : ["database_api", "network_broadcast_api", "history_api", "network_node_api"]
         }
      ],
      [
         "*",
         {
            "password_hash_b64" : "*",
            "password_salt_b64" : "*",
            "allowed_apis" : ["database_api", "network_broadcast_api", "history_api"]
         }
      ]
   ]
}`

const (
	seedHash = "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY="
	seedSalt = "INDdM6iCi/8="
)

func mustParse(t testing.TB, doc string) Map {
	t.Helper()
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hashOf returns Graphene's hash of password with salt, for test maps.
func hashOf(password string, salt []byte) string {
	sum := sha256.Sum256(append([]byte(password), salt...))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestLegacyVerify(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString(seedSalt)
	saltFirst := sha256.Sum256(append(slices.Clone(salt), "supersecret"...))
	for _, tc := range []struct {
		name, password, hash, salt string
		want                       bool
	}{
		{"seed example", "supersecret", seedHash, seedSalt, true},
		{"wrong password", "supersecreT", seedHash, seedSalt, false},
		{"empty password", "", seedHash, seedSalt, false},
		{"salt before password is not the scheme", "supersecret", base64.StdEncoding.EncodeToString(saltFirst[:]), seedSalt, false},
		{"base64 salt text instead of its bytes", "supersecret", hashOf("supersecret", []byte(seedSalt)), seedSalt, false},
		{"other salt", "supersecret", seedHash, "AAAAAAAAAAA=", false},
		{"empty salt", "pw", hashOf("pw", nil), "", true},
		{"wildcard is not a hash", "supersecret", "*", "*", false},
		{"hash not base64", "supersecret", "!!!", seedSalt, false},
		{"hash too short", "supersecret", "AAAA", seedSalt, false},
		{"salt not base64", "supersecret", seedHash, "*", false},
	} {
		if got := LegacyVerify(tc.password, tc.hash, tc.salt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseSeed(t *testing.T) {
	m := mustParse(t, seedExample)
	want := []Entry{
		{Username: "bytemaster", PasswordHashB64: seedHash, PasswordSaltB64: seedSalt,
			AllowedAPIs: []string{DatabaseAPI, NetworkBroadcastAPI, HistoryAPI, NetworkNodeAPI}},
		{Username: "*", PasswordHashB64: "*", PasswordSaltB64: "*",
			AllowedAPIs: []string{DatabaseAPI, NetworkBroadcastAPI, HistoryAPI}},
	}
	if got := m.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries\n got %+v\nwant %+v", got, want)
	}
	if w, ok := m.Wildcard(); !ok || !w.AnyPassword() {
		t.Fatalf("wildcard %+v %v", w, ok)
	}
	if got := want[0].Permissions(); !reflect.DeepEqual(got, []string{"read", "address", "transfer", "withdraw", "rescan"}) {
		t.Fatalf("bytemaster's permissions %v", got)
	}
	if got := want[1].Permissions(); !reflect.DeepEqual(got, []string{"read", "address", "transfer", "withdraw"}) {
		t.Fatalf("*'s permissions %v", got)
	}
}

func TestResolve(t *testing.T) {
	seed := mustParse(t, seedExample)
	salt := []byte("saltsalt")
	noWildcard := mustParse(t, `{"permission_map": [["bytemaster", {"password_hash_b64": "`+seedHash+
		`", "password_salt_b64": "`+seedSalt+`", "allowed_apis": ["database_api"]}],
		["open", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": []}]]}`)
	guarded := mustParse(t, `{"permission_map": [["*", {"password_hash_b64": "`+hashOf("guest", salt)+
		`", "password_salt_b64": "`+base64.StdEncoding.EncodeToString(salt)+`", "allowed_apis": ["database_api"]}]]}`)
	for _, tc := range []struct {
		name               string
		m                  Map
		user, password     string
		wantUser           string // "" when not ok
		wantWildcard, want bool
	}{
		{"known user, right password", seed, "bytemaster", "supersecret", "bytemaster", false, true},
		{"known user, wrong password: no fallback to *", seed, "bytemaster", "wrong", "", false, false},
		{"known user, empty password: no fallback to *", seed, "bytemaster", "", "", false, false},
		{"unknown user falls back to *", seed, "alice", "anything", "*", true, true},
		{"unknown user, empty password", seed, "alice", "", "*", true, true},
		{"empty username falls back to *", seed, "", "", "*", true, true},
		{"the * user itself", seed, "*", "x", "*", true, true},
		{"usernames are case-sensitive", seed, "Bytemaster", "wrong", "*", true, true},
		{"no * entry: unknown user refused", noWildcard, "alice", "supersecret", "", false, false},
		{"named user with * hash: any password", noWildcard, "open", "whatever", "open", false, true},
		{"guarded *: right password", guarded, "alice", "guest", "*", true, true},
		{"guarded *: wrong password", guarded, "alice", "nope", "", false, false},
		{"empty map", Map{}, "alice", "x", "", false, false},
	} {
		e, wildcard, ok := tc.m.Resolve(tc.user, tc.password)
		if ok != tc.want || wildcard != tc.wantWildcard || e.Username != tc.wantUser {
			t.Errorf("%s: Resolve(%q, %q) = %q, wildcard %v, ok %v; want %q, %v, %v", tc.name, tc.user, tc.password,
				e.Username, wildcard, ok, tc.wantUser, tc.wantWildcard, tc.want)
		}
	}
	// The entry returned is a copy.
	e, _, _ := seed.Resolve("bytemaster", "supersecret")
	e.AllowedAPIs[0] = "debug_api"
	if e2, _ := seed.Lookup("bytemaster"); e2.AllowedAPIs[0] != DatabaseAPI {
		t.Fatal("Resolve leaks the map's state")
	}
}

func TestParseErrors(t *testing.T) {
	entry := func(user, fields string) string { return `{"permission_map": [["` + user + `", {` + fields + `}]]}` }
	ok := `"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": []`
	for _, tc := range []struct {
		name, doc, path, msg string
	}{
		{"empty input", ``, "document", "unexpected end"},
		{"not an object", `[]`, "document", "want an object, got an array"},
		{"null", `null`, "document", "got null"},
		{"missing permission_map", `{}`, "document", "missing key permission_map"},
		{"unknown top-level key", `{"permission_map": [], "x": 1}`, "document", `unknown key "x"`},
		{"duplicate permission_map", `{"permission_map": [], "permission_map": []}`, "document", "duplicate key"},
		{"trailing data", `{"permission_map": []} {}`, "document", "trailing data"},
		{"syntax error", `{"permission_map": [,]}`, "permission_map[0]", "invalid character"},
		{"map not an array", `{"permission_map": {}}`, "permission_map", "want an array of [username, entry] pairs, got an object"},
		{"map is null", `{"permission_map": null}`, "permission_map", "got null"},
		{"pair not an array", `{"permission_map": [{}]}`, "permission_map[0]", "want a [username, entry] pair, got an object"},
		{"empty pair", `{"permission_map": [[]]}`, "permission_map[0]", "got an empty array"},
		{"username only", `{"permission_map": [["a"]]}`, "permission_map[0]", "got only the username"},
		{"three elements", `{"permission_map": [["a", {` + ok + `}, 1]]}`, "permission_map[0]", "more than two elements"},
		{"username not a string", `{"permission_map": [[1, {}]]}`, "permission_map[0][0]", "want a string, got the number 1"},
		{"empty username", entry("", ok), "permission_map[0][0]", "username is empty"},
		{"control character in username", entry(`a\u0000b`, ok), "permission_map[0][0]", "control"},
		{"entry not an object", `{"permission_map": [["a", []]]}`, "permission_map[0][1]", "want an object, got an array"},
		{"missing hash", entry("a", `"password_salt_b64": "*", "allowed_apis": []`), "permission_map[0][1]", "missing key password_hash_b64"},
		{"missing salt", entry("a", `"password_hash_b64": "*", "allowed_apis": []`), "permission_map[0][1]", "missing key password_salt_b64"},
		{"missing apis", entry("a", `"password_hash_b64": "*", "password_salt_b64": "*"`), "permission_map[0][1]", "missing key allowed_apis"},
		{"unknown field", entry("a", ok+`, "password": "x"`), "permission_map[0][1]", `unknown key "password"`},
		{"duplicate field", entry("a", ok+`, "allowed_apis": []`), "permission_map[0][1]", "duplicate key allowed_apis"},
		{"hash not a string", entry("a", `"password_hash_b64": 5, "password_salt_b64": "*", "allowed_apis": []`),
			"permission_map[0][1].password_hash_b64", "want a string"},
		{"hash not base64", entry("a", `"password_hash_b64": "xyz", "password_salt_b64": "*", "allowed_apis": []`),
			"permission_map[0][1].password_hash_b64", "base64 of a 32-byte"},
		{"hash too short", entry("a", `"password_hash_b64": "AAAA", "password_salt_b64": "AAAA", "allowed_apis": []`),
			"permission_map[0][1].password_hash_b64", "32-byte"},
		{"* salt beside a real hash", entry("a", `"password_hash_b64": "`+seedHash+`", "password_salt_b64": "*", "allowed_apis": []`),
			"permission_map[0][1].password_salt_b64", "want base64"},
		{"salt not base64", entry("a", `"password_hash_b64": "*", "password_salt_b64": "%%", "allowed_apis": []`),
			"permission_map[0][1].password_salt_b64", `want "*" or base64`},
		{"apis not an array", entry("a", `"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": "database_api"`),
			"permission_map[0][1].allowed_apis", "want an array of API set names"},
		{"api not a string", entry("a", `"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": [null]`),
			"permission_map[0][1].allowed_apis[0]", "want a string, got null"},
		{"unknown api", entry("a", `"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["database_api", "wallet_api"]`),
			"permission_map[0][1].allowed_apis[1]", `unknown API set "wallet_api"`},
		{"api twice", entry("a", `"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["database_api", "database_api"]`),
			"permission_map[0][1].allowed_apis[1]", "listed twice"},
		{"duplicate user", `{"permission_map": [["a", {` + ok + `}], ["b", {` + ok + `}], ["a", {` + ok + `}]]}`,
			"permission_map[2][0]", `duplicate user "a" (first at permission_map[0])`},
		{"unterminated", `{"permission_map": [["a", {` + ok + `}]`, "permission_map", "unexpected end"},
		{"too large", `{"permission_map": [` + strings.Repeat(" ", MaxFileSize) + `]}`, "document", "larger than"},
	} {
		_, err := Parse([]byte(tc.doc))
		var pe *Error
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want an *Error wrapping ErrInvalid", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.path+" (byte") || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%s: err %q, want path %q and message containing %q", tc.name, err, tc.path, tc.msg)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"empty map":               `{"permission_map": []}`,
		"no apis":                 `{"permission_map": [["a", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": []}]]}`,
		"base64 salt beside *":    `{"permission_map": [["a", {"password_hash_b64": "*", "password_salt_b64": "AAAA", "allowed_apis": []}]]}`,
		"unicode username":        `{"permission_map": [["Zoë", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": []}]]}`,
		"every known api":         `{"permission_map": [["a", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["` + strings.Join(KnownAPIs(), `","`) + `"]}]]}`,
		"fields in another order": `{"permission_map": [["a", {"allowed_apis": [], "password_salt_b64": "*", "password_hash_b64": "*"}]]}`,
	} {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMapping(t *testing.T) {
	want := map[string][]string{
		DatabaseAPI: {"read"}, HistoryAPI: {"read"}, BlockAPI: {"read"}, AssetAPI: {"read"}, OrdersAPI: {"read"},
		CustomOperationsAPI: {"read"},
		NetworkBroadcastAPI: {"address", "transfer", "withdraw"},
		NetworkNodeAPI:      {"rescan"},
		LoginAPI:            nil, CryptoAPI: nil, DebugAPI: nil,
	}
	if got := Mapping(); !reflect.DeepEqual(got, want) {
		t.Fatalf("mapping\n got %v\nwant %v", got, want)
	}
	for api, perms := range Mapping() {
		for _, p := range perms {
			if !slices.Contains(ledger.AllPermissions(), ledger.Permission(p)) {
				t.Errorf("%s maps to %q, not a wallet permission", api, p)
			}
		}
	}
	if got := Permissions([]string{NetworkNodeAPI, HistoryAPI, "nonsense", DatabaseAPI}); !reflect.DeepEqual(got, []string{"read", "rescan"}) {
		t.Errorf("union %v", got)
	}
	if got := Permissions([]string{DebugAPI, CryptoAPI, LoginAPI}); got != nil {
		t.Errorf("powerless sets grant %v", got)
	}
	if m := Mapping(); true {
		m[DatabaseAPI][0] = "withdraw"
		if Mapping()[DatabaseAPI][0] != "read" {
			t.Error("Mapping leaks the table")
		}
	}
}

func TestLegacyMarker(t *testing.T) {
	e, _ := mustParse(t, seedExample).Lookup("bytemaster")
	marker := e.LegacyMarker()
	if marker != "legacy-sha256$"+seedSalt+"$"+seedHash || !IsLegacyMarker(marker) {
		t.Fatalf("marker %q", marker)
	}
	if !VerifyLegacyMarker(marker, "supersecret") || VerifyLegacyMarker(marker, "supersecret!") {
		t.Fatal("marker does not verify the seed password")
	}
	for _, bad := range []string{"", "$2a$10$abc", "legacy-sha256$" + seedHash, "legacy-sha256$*$*", "legacy-sha256$" + seedSalt + "$" + seedHash + "x"} {
		if VerifyLegacyMarker(bad, "supersecret") {
			t.Errorf("malformed marker %q verifies", bad)
		}
	}
	if w, _ := mustParse(t, seedExample).Wildcard(); w.LegacyMarker() != "" {
		t.Error("an any-password entry has a marker")
	}
}

func FuzzParse(f *testing.F) {
	for _, doc := range []string{seedExample, `{"permission_map": []}`, `{"permission_map": [["a", {}]]}`, `{"permission_map": [[`, `[`,
		`{"permission_map": [["a", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["debug_api"]}]]}`,
		`{"permission_map": [["a", {"password_hash_b64": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "password_salt_b64": "", "allowed_apis": []}]]}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) || pe.Offset < 0 || pe.Offset > int64(len(data)) {
				t.Fatalf("error %#v is not a positioned *Error", err)
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("reparse of %s: %v", out, err)
		}
		if !reflect.DeepEqual(again.Entries(), m.Entries()) {
			t.Fatalf("round trip changed the map:\n%+v\n%+v", m.Entries(), again.Entries())
		}
		for _, e := range m.Entries() {
			if got, ok := m.Lookup(e.Username); !ok || !reflect.DeepEqual(got, e) {
				t.Fatalf("lookup %q", e.Username)
			}
			for _, api := range e.AllowedAPIs {
				if !KnownAPI(api) {
					t.Fatalf("unknown api %q accepted", api)
				}
			}
			if !e.AnyPassword() && LegacyVerify("", e.PasswordHashB64, "!") {
				t.Fatal("bad salt verifies")
			}
		}
	})
}

// TestWildcardPermissionsLeastPrivilege: the "*" entry reads only, whatever
// its API sets, unless the import asks for writes.
func TestWildcardPermissionsLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		apis   []string
		writes bool
		want   []string
	}{
		{[]string{DatabaseAPI, NetworkBroadcastAPI, HistoryAPI}, false, []string{"read"}},
		{[]string{DatabaseAPI, NetworkBroadcastAPI, HistoryAPI}, true, []string{"read", "address", "transfer", "withdraw"}},
		{[]string{NetworkBroadcastAPI, NetworkNodeAPI}, false, nil},
		{[]string{NetworkBroadcastAPI, NetworkNodeAPI}, true, []string{"address", "transfer", "withdraw", "rescan"}},
		{[]string{LoginAPI}, false, nil},
	} {
		e := Entry{Username: Wildcard, PasswordHashB64: Wildcard, PasswordSaltB64: Wildcard, AllowedAPIs: tc.apis}
		if got := e.WildcardPermissions(tc.writes); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v writes=%v: %v, want %v", tc.apis, tc.writes, got, tc.want)
		}
	}
}
