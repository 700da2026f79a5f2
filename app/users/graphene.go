package users

import (
	"context"
	"errors"
	"fmt"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
)

// ImportOptions tune ImportGraphene.
type ImportOptions struct {
	// Wallet is the wallet the imported users' permissions are granted on.
	Wallet string
	// WildcardWrites gives the "*" user every wallet permission its API
	// sets map to (network_broadcast_api: address, transfer, withdraw). By
	// default the "*" user reads only: anyone may log in as it, so any
	// more is an operator's explicit decision
	// (graphene.Entry.WildcardPermissions).
	WildcardWrites bool
}

// ImportReport tells what ImportGraphene did.
type ImportReport struct {
	// Imported are the users registered, in file order.
	Imported []string
	// Skipped are the entries not imported, with the reason.
	Skipped []Skipped
	// Wildcard is the "*" entry, if the map has one and it was imported as
	// the user Anonymous (see WildcardPermissions).
	Wildcard *graphene.Entry
	// WildcardPermissions are the wallet permissions the "*" user holds on
	// the wallet after the import.
	WildcardPermissions []string
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
	// SkipAnonymousTaken: the "*" entry was not imported because a user
	// named Anonymous exists that no import made the wildcard user.
	SkipAnonymousTaken = "user " + Anonymous + " exists and is not the wildcard user: rename or remove it to import the * entry"
)

// ImportGraphene registers the users of a Graphene permission map. Each
// user gets no role, its allowed_apis as its API sets (identity.GrantAPISets:
// what it may call over JSON-RPC), the password hash marker "legacy-sha256$salt$hash"
// (Authenticate checks it once and replaces it with a modern hash) and, if
// its API sets map to any wallet permission (graphene.Mapping), a grant of
// those permissions on opts.Wallet, appended together with the
// registration.
//
// Entries are skipped, not failed, when the user exists already (so an
// import can be re-run), when the name is not a valid coinledger username,
// or when the entry accepts any password. The "*" entry becomes the user
// Anonymous (see importWildcard). A store error stops the import; the
// report tells what was done before it.
func (s *Service) ImportGraphene(ctx context.Context, meta eventstore.Metadata, m graphene.Map, opts ImportOptions) (ImportReport, error) {
	var r ImportReport
	wallet := opts.Wallet
	if !identity.ValidWallet(wallet) {
		return r, fmt.Errorf("import graphene users: %w: wallet name %q is not valid", identity.ErrValidation, clip(wallet))
	}
	for _, e := range m.Entries() {
		switch {
		case e.Username == graphene.Wildcard:
			perms, err := s.importWildcard(ctx, meta, e, wallet, opts.WildcardWrites)
			switch {
			case errors.Is(err, errAnonymousTaken):
				r.Skipped = append(r.Skipped, Skipped{e.Username, SkipAnonymousTaken})
			case err != nil:
				return r, err
			default:
				r.Wildcard, r.WildcardPermissions = &e, perms
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
		err := s.update(ctx, meta, e.Username, registerGranted(e.Username, e.LegacyMarker(), wallet, perms, e.AllowedAPIs))
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

// Anonymous is the user that stands for Graphene's "*" entry: once an
// import has designated it (identity.WildcardDesignated), a login with a
// username that is not registered is checked against it (a registered user
// with a wrong password is not). A user registered by hand under this name
// is an ordinary user: it does not turn the fallback on.
const Anonymous = "anonymous"

// anyPassword is the password hash of an anonymous user whose "*" entry
// accepts any password. It works only for the wildcard user.
const anyPassword = "any-password"

var errAnonymousTaken = errors.New("anonymous is taken")

// importWildcard makes the user Anonymous the "*" entry: registered with
// the entry's password (any password, or its legacy marker), granted
// e.WildcardPermissions(writes) on wallet and designated the wildcard
// user, in one append. On a re-run the grant is brought in line with the
// file and writes. A user Anonymous that no import made (its hash is not
// one only an import writes) is left alone: errAnonymousTaken. It returns
// the permissions granted.
func (s *Service) importWildcard(ctx context.Context, meta eventstore.Metadata, e graphene.Entry, wallet string, writes bool) ([]string, error) {
	hash := anyPassword
	if !e.AnyPassword() {
		hash = e.LegacyMarker()
	}
	perms := e.WildcardPermissions(writes)
	err := s.update(ctx, meta, Anonymous, func(u *identity.User) ([]identity.Event, error) {
		var all []identity.Event
		step := func(events []identity.Event, err error) error {
			for _, ev := range events {
				identity.Evolve(u, ev)
			}
			all = append(all, events...)
			return err
		}
		switch {
		case !u.Registered:
			if err := step(identity.Register(u, Anonymous, "", hash, nil)); err != nil {
				return nil, err
			}
		case !u.Wildcard() && !madeByImport(u.PasswordHash):
			return nil, errAnonymousTaken
		}
		if len(perms) > 0 {
			if err := step(identity.Grant(u, wallet, perms)); err != nil {
				return nil, err
			}
		} else if err := step(identity.Revoke(u, wallet)); err != nil {
			return nil, err
		}
		if err := step(identity.DesignateWildcard(u)); err != nil {
			return nil, err
		}
		if err := step(identity.GrantAPISets(u, e.AllowedAPIs)); err != nil {
			return nil, err
		}
		return all, nil
	})
	if err != nil {
		if errors.Is(err, errAnonymousTaken) {
			return nil, err
		}
		return nil, fmt.Errorf("import graphene wildcard: %w", err)
	}
	return perms, nil
}

// madeByImport reports whether hash is one that only ImportGraphene writes
// (any password, or a legacy marker not yet upgraded): an Anonymous user
// imported before WildcardDesignated existed. Users registered by hand or
// by configuration always have bcrypt or argon2id hashes.
func madeByImport(hash string) bool { return hash == anyPassword || graphene.IsLegacyMarker(hash) }

// registerGranted decides the registration of username with password
// hash, granted perms on wallet (none: no grant) and limited to the API
// sets apis over JSON-RPC.
func registerGranted(username, hash, wallet string, perms, apis []string) func(*identity.User) ([]identity.Event, error) {
	return func(u *identity.User) ([]identity.Event, error) {
		events, err := identity.Register(u, username, "", hash, nil)
		if err != nil {
			return nil, err
		}
		for _, ev := range events {
			identity.Evolve(u, ev)
		}
		if len(perms) > 0 {
			grant, err := identity.Grant(u, wallet, perms)
			if err != nil {
				return nil, err
			}
			for _, ev := range grant {
				identity.Evolve(u, ev)
			}
			events = append(events, grant...)
		}
		sets, err := identity.GrantAPISets(u, apis)
		return append(events, sets...), err
	}
}
