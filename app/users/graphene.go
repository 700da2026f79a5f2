package users

import (
	"context"
	"errors"
	"fmt"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
)

// ImportReport tells what ImportGraphene did.
type ImportReport struct {
	// Imported are the users registered, in file order.
	Imported []string
	// Skipped are the entries not imported, with the reason.
	Skipped []Skipped
	// Wildcard is the "*" entry, if the map has one. It is not a user: the
	// caller may configure anonymous access from its API sets
	// (graphene.Entry.Permissions).
	Wildcard *graphene.Entry
}

// Skipped is an entry ImportGraphene left out.
type Skipped struct {
	Username string
	Reason   string
}

// Reasons for skipping an entry.
const (
	SkipExists          = "user exists"
	SkipInvalidUsername = "not a valid coinledger username (1-64 of a-z 0-9 . _ -, starting with a letter or digit)"
	SkipAnyPassword     = "accepts any password"
)

// ImportGraphene registers the users of a Graphene permission map. Each
// user gets no role, the password hash marker "legacy-sha256$salt$hash"
// (Authenticate checks it once and replaces it with a modern hash) and, if
// its API sets map to any wallet permission (graphene.Mapping), a grant of
// those permissions on wallet, appended together with the registration.
//
// Entries are skipped, not failed, when the user exists already (so an
// import can be re-run), when the name is not a valid coinledger username,
// or when the entry accepts any password. The "*" entry is returned in the
// report, not imported. A store error stops the import; the report tells
// what was done before it.
func (s *Service) ImportGraphene(ctx context.Context, meta eventstore.Metadata, m graphene.Map, wallet string) (ImportReport, error) {
	var r ImportReport
	if !identity.ValidWallet(wallet) {
		return r, fmt.Errorf("import graphene users: %w: wallet name %q is not valid", identity.ErrValidation, clip(wallet))
	}
	for _, e := range m.Entries() {
		switch {
		case e.Username == graphene.Wildcard:
			r.Wildcard = &e
			if err := s.importWildcard(ctx, meta, e, wallet); err != nil {
				return r, err
			}
			continue
		case !identity.ValidUsername(e.Username):
			r.Skipped = append(r.Skipped, Skipped{e.Username, SkipInvalidUsername})
			continue
		case e.AnyPassword():
			r.Skipped = append(r.Skipped, Skipped{e.Username, SkipAnyPassword})
			continue
		}
		perms := e.Permissions()
		err := s.update(ctx, meta, e.Username, registerGranted(e.Username, e.LegacyMarker(), wallet, perms))
		switch {
		case errors.Is(err, identity.ErrUserExists):
			r.Skipped = append(r.Skipped, Skipped{e.Username, SkipExists})
		case err != nil:
			return r, fmt.Errorf("import graphene user %s: %w", e.Username, err)
		default:
			r.Imported = append(r.Imported, e.Username)
		}
	}
	return r, nil
}

// Anonymous is the user that stands for Graphene's "*" entry: a login with
// a username that does not exist is checked against it (a known user with
// a wrong password is not).
const Anonymous = "anonymous"

// anyPassword is the password hash of an anonymous user whose "*" entry
// accepts any password. Only the Anonymous user may carry it.
const anyPassword = "any-password"

// importWildcard registers the Anonymous user from the "*" entry, with its
// API sets mapped to a grant on wallet; an existing Anonymous user is left
// as it is.
func (s *Service) importWildcard(ctx context.Context, meta eventstore.Metadata, e graphene.Entry, wallet string) error {
	hash := anyPassword
	if !e.AnyPassword() {
		hash = e.LegacyMarker()
	}
	perms := e.Permissions()
	err := s.update(ctx, meta, Anonymous, registerGranted(Anonymous, hash, wallet, perms))
	if err != nil && !errors.Is(err, identity.ErrUserExists) {
		return fmt.Errorf("import graphene wildcard: %w", err)
	}
	return nil
}

// registerGranted decides the registration of username with password
// hash, granted perms on wallet (none: no grant).
func registerGranted(username, hash, wallet string, perms []string) func(*identity.User) ([]identity.Event, error) {
	return func(u *identity.User) ([]identity.Event, error) {
		events, err := identity.Register(u, username, "", hash, nil)
		if err != nil || len(perms) == 0 {
			return events, err
		}
		for _, ev := range events {
			identity.Evolve(u, ev)
		}
		grant, err := identity.Grant(u, wallet, perms)
		return append(events, grant...), err
	}
}
