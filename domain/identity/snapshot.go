package identity

import (
	"encoding/json"
	"fmt"
	"time"
)

// SnapshotSchema names the shape EncodeSnapshot writes. Change it whenever
// User gains, loses or reinterprets a field: snapshots of another schema
// are ignored and the stream is folded from its first event.
const SnapshotSchema = "identity.user/v2"

// userSnapshot is the encoded form of a User: every field, exported. It
// holds credential material (the password hash, API key hashes, refresh
// token ids): whoever stores it must seal it as the log does.
type userSnapshot struct {
	Registered        bool                `json:"registered"`
	Username          string              `json:"username"`
	Email             string              `json:"email"`
	PasswordHash      string              `json:"password_hash"`
	Roles             []string            `json:"roles"`
	Disabled          bool                `json:"disabled"`
	Wildcard          bool                `json:"wildcard"`
	APISets           []string            `json:"api_sets"`
	Grants            map[string][]string `json:"grants"`
	SessionsRevokedAt time.Time           `json:"sessions_revoked_at"`
	Keys              []APIKey            `json:"keys"`
	Families          []Family            `json:"families"`
	Clock             time.Time           `json:"clock"`
}

// EncodeSnapshot encodes u (every field) as JSON for DecodeSnapshot. The
// result holds credential material in the clear: seal it before storing.
func EncodeSnapshot(u *User) ([]byte, error) {
	if u == nil {
		u = New()
	}
	out := userSnapshot{Registered: u.Registered, Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash,
		Roles: u.Roles, Disabled: u.disabled, Wildcard: u.wildcard, APISets: u.apiSets, Grants: u.grants,
		SessionsRevokedAt: u.sessionsRevokedAt, Keys: u.keys, Clock: u.clock}
	if u.families != nil {
		out.Families = make([]Family, len(u.families))
		for i, f := range u.families {
			out.Families[i] = *f
		}
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode user snapshot: %w", err)
	}
	return data, nil
}

// DecodeSnapshot rebuilds the User EncodeSnapshot encoded.
func DecodeSnapshot(data []byte) (*User, error) {
	var in userSnapshot
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("decode user snapshot: %w", err)
	}
	u := &User{Registered: in.Registered, Username: in.Username, Email: in.Email, PasswordHash: in.PasswordHash,
		Roles: in.Roles, disabled: in.Disabled, wildcard: in.Wildcard, apiSets: in.APISets, grants: in.Grants,
		sessionsRevokedAt: in.SessionsRevokedAt, keys: in.Keys, clock: in.Clock}
	if in.Families != nil {
		u.families = make([]*Family, len(in.Families))
		for i := range in.Families {
			u.families[i] = &in.Families[i]
		}
	}
	return u, nil
}
