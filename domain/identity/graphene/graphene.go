// Package graphene reads Graphene's api-access.json (the permission map of a
// Graphene/BitShares node), checks logins against it the way Graphene does,
// and maps Graphene API sets to coinledger wallet permissions, so users of
// such a node can be imported. Pure: no I/O.
//
// The file:
//
//	{"permission_map": [
//	   ["bytemaster", {"password_hash_b64": "9e9G…", "password_salt_b64": "INDd…",
//	                   "allowed_apis": ["database_api", "network_broadcast_api"]}],
//	   ["*", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["database_api"]}]
//	]}
//
// Passwords: password_hash_b64 is base64(SHA-256(password ‖ salt)), where salt
// is the base64-decoded password_salt_b64: the password's bytes first, then
// the raw salt bytes (the documented example, bytemaster / "supersecret",
// verifies only in this order). A hash of "*" accepts any password.
//
// The "*" user: a username that is not in the map logs in as "*" (with "*"'s
// password check, normally "*": any password). A username that is in the map
// never falls back to "*": a wrong password is a failed login.
package graphene

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/ledger"
)

// Wildcard is the username, and the password hash, that match anything.
const Wildcard = "*"

// API set names.
const (
	LoginAPI            = "login_api"
	DatabaseAPI         = "database_api"
	HistoryAPI          = "history_api"
	BlockAPI            = "block_api"
	AssetAPI            = "asset_api"
	OrdersAPI           = "orders_api"
	CustomOperationsAPI = "custom_operations_api"
	NetworkBroadcastAPI = "network_broadcast_api"
	NetworkNodeAPI      = "network_node_api"
	CryptoAPI           = "crypto_api"
	DebugAPI            = "debug_api"
)

// A legacy marker is "legacy-sha256$<salt_b64>$<hash_b64>" (base64 has no "$").
const (
	legacyMarkerPrefix   = "legacy-sha256$"
	legacyMarkerSplitter = "$"
)

// apiPermissions is the mapping table from Graphene API sets to wallet
// permissions. See Mapping for the reasons.
var apiPermissions = map[string][]ledger.Permission{
	// Read-only queries of chain state: API 0 in Graphene, the calls a
	// deposit monitor needs.
	DatabaseAPI:         {ledger.PermRead},
	HistoryAPI:          {ledger.PermRead}, // account history ↔ entries, deposits, withdrawals
	BlockAPI:            {ledger.PermRead},
	AssetAPI:            {ledger.PermRead},
	OrdersAPI:           {ledger.PermRead},
	CustomOperationsAPI: {ledger.PermRead},
	// Broadcasting signed transactions is how a Graphene client moves funds
	// (on chain: withdraw; between accounts: transfer) and registers the
	// accounts it receives on (address).
	NetworkBroadcastAPI: {ledger.PermAddress, ledger.PermTransfer, ledger.PermWithdraw},
	// Node administration (peers, sync parameters): the closest coinledger
	// power is asking the chain backend to rescan.
	NetworkNodeAPI: {ledger.PermRescan},
	// No wallet power: login is always available; crypto_api is stateless
	// helpers; debug_api rewrites node state and is never imported. freeze
	// and lock have no Graphene counterpart: an admin grants them.
	LoginAPI:  nil,
	CryptoAPI: nil,
	DebugAPI:  nil,
}

// KnownAPI reports whether name is an API set this package knows.
func KnownAPI(name string) bool { _, ok := apiPermissions[name]; return ok }

// KnownAPIs returns the known API set names, sorted.
func KnownAPIs() []string {
	out := make([]string, 0, len(apiPermissions))
	for name := range apiPermissions {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Mapping returns the table from API set name to wallet permissions (a
// copy; nil: no wallet permission):
//
//	database_api, history_api, block_api,
//	asset_api, orders_api, custom_operations_api → read
//	network_broadcast_api                        → address, transfer, withdraw
//	network_node_api                             → rescan
//	login_api, crypto_api, debug_api             → (none)
func Mapping() map[string][]string {
	out := make(map[string][]string, len(apiPermissions))
	for name, perms := range apiPermissions {
		out[name] = toStrings(perms)
	}
	return out
}

// Permissions returns the wallet permissions that apis grant together, in
// the canonical order of ledger.AllPermissions (nil: none). Unknown names
// grant nothing.
func Permissions(apis []string) []string {
	var out []string
	for _, p := range ledger.AllPermissions() {
		for _, api := range apis {
			if slices.Contains(apiPermissions[api], p) {
				out = append(out, string(p))
				break
			}
		}
	}
	return out
}

func toStrings(perms []ledger.Permission) []string {
	if perms == nil {
		return nil
	}
	out := make([]string, len(perms))
	for i, p := range perms {
		out[i] = string(p)
	}
	return out
}

// Entry is one user of a permission map.
type Entry struct {
	Username        string
	PasswordHashB64 string // base64 SHA-256(password ‖ salt), or "*": any password
	PasswordSaltB64 string // base64 salt ("*" or ignored when the hash is "*")
	AllowedAPIs     []string
}

// AnyPassword reports whether the entry accepts every password.
func (e Entry) AnyPassword() bool { return e.PasswordHashB64 == Wildcard }

// Permissions returns the wallet permissions of the entry's API sets.
func (e Entry) Permissions() []string { return Permissions(e.AllowedAPIs) }

// WildcardPermissions returns the wallet permissions the "*" entry is
// imported with. Least privilege: a login as "*" proves nothing about who
// the caller is (usually any password is accepted), so the "*" user reads
// only — read, if its API sets map to read — unless the import names
// writes, the operator's explicit choice to give it every permission its
// API sets map to (network_broadcast_api: address, transfer, withdraw).
func (e Entry) WildcardPermissions(writes bool) []string {
	perms := e.Permissions()
	if writes {
		return perms
	}
	if slices.Contains(perms, string(ledger.PermRead)) {
		return []string{string(ledger.PermRead)}
	}
	return nil
}

// LegacyMarker returns the entry's password as a coinledger password hash
// string, "legacy-sha256$<salt_b64>$<hash_b64>", which VerifyLegacyMarker
// checks. An entry that accepts any password has no marker ("").
func (e Entry) LegacyMarker() string {
	if e.AnyPassword() {
		return ""
	}
	return legacyMarkerPrefix + e.PasswordSaltB64 + legacyMarkerSplitter + e.PasswordHashB64
}

// IsLegacyMarker reports whether hash is a legacy marker (whether or not
// it is well formed).
func IsLegacyMarker(hash string) bool { return strings.HasPrefix(hash, legacyMarkerPrefix) }

// VerifyLegacyMarker reports whether password matches marker, a string
// made by Entry.LegacyMarker. A malformed marker matches nothing.
func VerifyLegacyMarker(marker, password string) bool {
	rest, ok := strings.CutPrefix(marker, legacyMarkerPrefix)
	if !ok {
		return false
	}
	salt, hash, ok := strings.Cut(rest, legacyMarkerSplitter)
	if !ok {
		return false
	}
	return LegacyVerify(password, hash, salt)
}

// LegacyVerify reports whether password matches Graphene's salted hash:
// base64-decoded hashB64 == SHA-256(password ‖ base64-decoded saltB64),
// compared in constant time. A hash that is not base64 of 32 bytes, a salt
// that is not base64, and the "*" wildcard (not a hash) match nothing.
func LegacyVerify(password, hashB64, saltB64 string) bool {
	want, err := base64.StdEncoding.Strict().DecodeString(hashB64)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(saltB64)
	if err != nil {
		return false
	}
	h := sha256.New()
	h.Write([]byte(password))
	h.Write(salt)
	return subtle.ConstantTimeCompare(h.Sum(nil), want) == 1
}

// Map is a parsed permission map. The zero Map has no users.
type Map struct {
	entries []Entry
	index   map[string]int
}

// Entries returns the entries in file order.
func (m Map) Entries() []Entry {
	out := make([]Entry, len(m.entries))
	for i, e := range m.entries {
		e.AllowedAPIs = slices.Clone(e.AllowedAPIs)
		out[i] = e
	}
	return out
}

// Lookup returns the entry of exactly username (no fallback to "*").
func (m Map) Lookup(username string) (Entry, bool) {
	i, ok := m.index[username]
	if !ok {
		return Entry{}, false
	}
	e := m.entries[i]
	e.AllowedAPIs = slices.Clone(e.AllowedAPIs)
	return e, true
}

// Wildcard returns the "*" entry, if the map has one.
func (m Map) Wildcard() (Entry, bool) { return m.Lookup(Wildcard) }

// Resolve logs username in with password as Graphene does: the entry of
// username if the map has one, else the "*" entry (matchedWildcard true);
// then the entry's password check ("*" accepts anything). ok is false, with
// a zero Entry, when no entry applies or the password is wrong — a known
// username with a wrong password does not fall back to "*".
func (m Map) Resolve(username, password string) (e Entry, matchedWildcard bool, ok bool) {
	e, found := m.Lookup(username)
	if !found {
		e, found = m.Wildcard()
		matchedWildcard = true
	}
	if !found {
		LegacyVerify(password, dummyHash, dummySalt) // as slow as a real check
		return Entry{}, false, false
	}
	if e.AnyPassword() || LegacyVerify(password, e.PasswordHashB64, e.PasswordSaltB64) {
		return e, matchedWildcard || username == Wildcard, true
	}
	return Entry{}, false, false
}

const (
	dummyHash = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	dummySalt = "AAAAAAAAAAA="
)
