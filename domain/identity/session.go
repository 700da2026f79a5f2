package identity

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Refresh families. A login starts a family with its first refresh token;
// every refresh spends the family's current token and issues the next one.
// Presenting a spent token again (a stolen token racing its owner) revokes
// the whole family.
//
// Bounds: a family is forgotten once the event clock (see Evolve) passes
// its expiry; at most MaxFamilies families are kept — starting one more
// forgets the oldest revoked family or, if none is revoked, the oldest
// family, whose tokens then no longer work — and each family remembers its
// last MaxSpentTokens spent token ids (an older spent token is refused with
// ErrRefreshInvalid without revoking the family).
const (
	MaxFamilies    = 64
	MaxSpentTokens = 64
)

// Why a family was revoked.
const (
	RevokedReuse  = "reuse"  // a spent token was presented again
	RevokedLogout = "logout" // its holder logged out
	// RevokedBySessions marks, in state only, the families that a
	// SessionsRevoked ended; no RefreshFamilyRevoked carries it.
	RevokedBySessions = "sessions_revoked"
)

// RefreshIssued: a login started refresh family Family with token TokenID.
type RefreshIssued struct {
	Family    string    `json:"family"`
	TokenID   string    `json:"token_id"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RefreshRotated: OldTokenID was spent and NewTokenID is the family's
// current token.
type RefreshRotated struct {
	Family     string    `json:"family"`
	OldTokenID string    `json:"old_token_id"`
	NewTokenID string    `json:"new_token_id"`
	At         time.Time `json:"at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// RefreshFamilyRevoked: no token of Family works any more. Reason is
// RevokedReuse or RevokedLogout.
type RefreshFamilyRevoked struct {
	Family string `json:"family"`
	Reason string `json:"reason"`
}

func (RefreshIssued) EventType() string        { return TypeRefreshIssued }
func (RefreshRotated) EventType() string       { return TypeRefreshRotated }
func (RefreshFamilyRevoked) EventType() string { return TypeRefreshFamilyRevoked }

// Family is a refresh family as the user stream knows it.
type Family struct {
	ID        string
	Current   string // the token id that the next rotation must present
	StartedAt time.Time
	RotatedAt time.Time // StartedAt until the first rotation
	ExpiresAt time.Time // of the current token
	Rotations int
	// RevokedReason is "" while the family is not revoked, else RevokedReuse,
	// RevokedLogout or RevokedBySessions.
	RevokedReason string
	// Spent are the family's spent token ids, oldest first, at most
	// MaxSpentTokens.
	Spent []string
}

// Live reports whether f's current token works at now.
func (f Family) Live(now time.Time) bool { return f.RevokedReason == "" && now.Before(f.ExpiresAt) }

// Family returns the refresh family id, if the user still remembers it.
func (u *User) Family(id string) (Family, bool) {
	f := u.family(id)
	if f == nil {
		return Family{}, false
	}
	c := *f
	c.Spent = slices.Clone(f.Spent)
	return c, true
}

// Families returns the remembered refresh families, oldest first.
func (u *User) Families() []Family {
	out := make([]Family, 0, len(u.families))
	for _, f := range u.families {
		c := *f
		c.Spent = slices.Clone(f.Spent)
		out = append(out, c)
	}
	return out
}

func (u *User) family(id string) *Family {
	for _, f := range u.families {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// capFamilies keeps at most MaxFamilies families: it forgets the oldest
// revoked family first, then the oldest.
func (u *User) capFamilies() {
	for len(u.families) > MaxFamilies {
		i := slices.IndexFunc(u.families, func(f *Family) bool { return f.RevokedReason != "" })
		if i < 0 {
			i = 0
		}
		u.families = slices.Delete(u.families, i, i+1)
	}
}

// tokenRE: family and token ids are 1-128 printable ASCII characters
// without spaces.
var tokenRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// StartSession decides starting refresh family family with token tokenID
// at now, the token expiring at expiresAt. u must be registered and
// enabled; family must be new to u.
func StartSession(u *User, family, tokenID string, now, expiresAt time.Time) ([]Event, error) {
	op := "start session " + clip(family) + " of " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	switch {
	case !tokenRE.MatchString(family):
		return nil, invalid(op, "family id must be 1-128 printable ASCII characters")
	case !tokenRE.MatchString(tokenID):
		return nil, invalid(op, "token id must be 1-128 printable ASCII characters")
	case now.IsZero() || !expiresAt.After(now):
		return nil, invalid(op, "expiry must be after now")
	case u.family(family) != nil:
		return nil, invalid(op, "family exists")
	}
	if u.disabled {
		return nil, fail(op, ErrUserDisabled)
	}
	return []Event{RefreshIssued{Family: family, TokenID: tokenID, At: now, ExpiresAt: expiresAt}}, nil
}

// Decision is what a decider returns when a refused command still has
// events to record. Events are to be appended whatever Err is; Err is the
// outcome to report once they are appended (nil: success). When Events is
// empty there is nothing to append and Err is the whole answer.
//
// With eventstore.Repository.Update, whose decide function must return a
// nil error for its events to be appended, a caller keeps Err aside:
//
//	var outcome error
//	_, _, err := repo.Update(ctx, stream, meta, func(u *User) ([]Event, error) {
//		d := Rotate(u, ...)
//		outcome = d.Err
//		if len(d.Events) == 0 {
//			return nil, d.Err
//		}
//		return d.Events, nil
//	})
//	if err != nil {
//		return err
//	}
//	return outcome
type Decision struct {
	Events []Event
	Err    error
}

// Rotate decides refreshing family: presented is the token id the client
// presents, newTokenID the id of the token to issue, valid until expiresAt.
//
//   - presented is the family's current token, the family is not revoked
//     and the token has not expired at now: RefreshRotated, Err nil.
//   - presented is a spent token of a family that is not revoked and not
//     expired: RefreshFamilyRevoked{Reason: "reuse"} with an Err wrapping
//     ErrRefreshReused (and ErrRefreshInvalid). The event must be appended.
//   - the family is unknown, revoked or expired, or presented is no token
//     of it: no events, Err wrapping ErrRefreshInvalid.
//   - u is disabled: no events, Err wrapping ErrUserDisabled and
//     ErrRefreshInvalid.
//   - u is not registered: ErrUserNotFound; bad newTokenID or expiresAt:
//     ErrValidation.
func Rotate(u *User, family, presented, newTokenID string, now, expiresAt time.Time) Decision {
	op := "rotate refresh family " + clip(family) + " of " + u.Username
	if err := registered(u, op); err != nil {
		return Decision{Err: err}
	}
	switch {
	case !tokenRE.MatchString(newTokenID):
		return Decision{Err: invalid(op, "new token id must be 1-128 printable ASCII characters")}
	case now.IsZero() || !expiresAt.After(now):
		return Decision{Err: invalid(op, "expiry must be after now")}
	}
	if u.disabled {
		return Decision{Err: fmt.Errorf("%s: %w: %w", op, ErrRefreshInvalid, ErrUserDisabled)}
	}
	f := u.family(family)
	if f == nil || f.RevokedReason != "" || !now.Before(f.ExpiresAt) {
		return Decision{Err: fail(op, ErrRefreshInvalid)}
	}
	switch {
	case presented == f.Current:
		if newTokenID == f.Current || slices.Contains(f.Spent, newTokenID) {
			return Decision{Err: invalid(op, "new token id was used before")}
		}
		return Decision{Events: []Event{RefreshRotated{Family: family, OldTokenID: presented, NewTokenID: newTokenID,
			At: now, ExpiresAt: expiresAt}}}
	case slices.Contains(f.Spent, presented):
		return Decision{
			Events: []Event{RefreshFamilyRevoked{Family: family, Reason: RevokedReuse}},
			Err:    fmt.Errorf("%s: %w: %w", op, ErrRefreshInvalid, ErrRefreshReused),
		}
	}
	return Decision{Err: fail(op, ErrRefreshInvalid)}
}

// Logout decides revoking family with reason "logout". Logging out of a
// family that is unknown or already revoked decides nothing, so a repeated
// logout is harmless.
func Logout(u *User, family string) ([]Event, error) {
	if err := registered(u, "logout "+clip(family)); err != nil {
		return nil, err
	}
	f := u.family(family)
	if f == nil || f.RevokedReason != "" {
		return nil, nil
	}
	return []Event{RefreshFamilyRevoked{Family: family, Reason: RevokedLogout}}, nil
}
