// Package users is the read model of users: who exists, with which roles,
// whether disabled, and their per-wallet grants.
package users

import (
	"context"
	"fmt"
	"strings"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// Projection folds user streams into tables users and user_grants.
type Projection struct {
	codec *eventstore.Codec[identity.Event]
}

// New returns the projection.
func New() *Projection { return &Projection{codec: eventstore.NewCodecOf(identity.Events()...)} }

// Name implements projections.Projection.
func (*Projection) Name() string { return "users" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (*Projection) Version() int { return 1 }

// Migrations implements projections.Projection.
func (*Projection) Migrations(projections.Dialect) []string {
	return []string{
		`CREATE TABLE users (
			username TEXT PRIMARY KEY,
			email    TEXT NOT NULL,
			roles    TEXT NOT NULL,
			disabled BIGINT NOT NULL,
			position BIGINT NOT NULL
		)`,
		`CREATE TABLE user_grants (
			username    TEXT NOT NULL,
			wallet      TEXT NOT NULL,
			permissions TEXT NOT NULL,
			PRIMARY KEY (username, wallet)
		)`,
	}
}

var _ projections.Selective = (*Projection)(nil)

// Wants implements projections.Selective: the events of user streams.
func (p *Projection) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, identity.StreamPrefix) && p.codec.Knows(e.Type)
}

// Apply implements projections.Projection. User events are rare: one
// statement per event is plenty.
func (p *Projection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	for _, e := range events {
		name, ok := strings.CutPrefix(e.Stream, identity.StreamPrefix)
		if !ok || !p.codec.Knows(e.Type) {
			continue
		}
		ev, err := p.codec.Decode(e)
		if err != nil {
			return fmt.Errorf("users projection: %w", err)
		}
		pos := int64(e.Position)
		switch ev := ev.(type) {
		case identity.UserRegistered:
			_, err = tx.Exec(ctx, `INSERT INTO users (username, email, roles, disabled, position) VALUES (?, ?, ?, 0, ?)
				ON CONFLICT (username) DO NOTHING`, name, ev.Email, strings.Join(ev.Roles, ","), pos)
		case identity.RolesChanged:
			_, err = tx.Exec(ctx, `UPDATE users SET roles = ?, position = ? WHERE username = ?`, strings.Join(ev.Roles, ","), pos, name)
		case identity.UserDisabled:
			_, err = tx.Exec(ctx, `UPDATE users SET disabled = 1, position = ? WHERE username = ?`, pos, name)
		case identity.UserEnabled:
			_, err = tx.Exec(ctx, `UPDATE users SET disabled = 0, position = ? WHERE username = ?`, pos, name)
		case identity.WalletGranted:
			_, err = tx.Exec(ctx, `INSERT INTO user_grants (username, wallet, permissions) VALUES (?, ?, ?)
				ON CONFLICT (username, wallet) DO UPDATE SET permissions = excluded.permissions`,
				name, ev.Wallet, strings.Join(ev.Permissions, ","))
		case identity.WalletRevoked:
			_, err = tx.Exec(ctx, `DELETE FROM user_grants WHERE username = ? AND wallet = ?`, name, ev.Wallet)
		}
		if err != nil {
			return fmt.Errorf("users projection at %s: %w", e, err)
		}
	}
	return nil
}

// User is a row of the read model.
type User struct {
	Username string
	Email    string
	Roles    []string
	Disabled bool
	Grants   []Grant
}

// Grant is a user's permissions on a wallet.
type Grant struct {
	Wallet      string
	Permissions []string
}

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// List returns every user with grants, by name.
func List(ctx context.Context, db projections.DB) ([]User, error) {
	rows, err := db.Query(ctx, `SELECT username, email, roles, disabled FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []User
	index := map[string]int{}
	for rows.Next() {
		var u User
		var roles string
		var disabled int64
		if err := rows.Scan(&u.Username, &u.Email, &roles, &disabled); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.Roles, u.Disabled = split(roles), disabled != 0
		index[u.Username] = len(out)
		out = append(out, u)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT username, wallet, permissions FROM user_grants ORDER BY username, wallet`)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user, w, perms string
		if err := rows.Scan(&user, &w, &perms); err != nil {
			return nil, fmt.Errorf("list grants: %w", err)
		}
		if i, ok := index[user]; ok {
			out[i].Grants = append(out[i].Grants, Grant{Wallet: w, Permissions: split(perms)})
		}
	}
	return out, rows.Close()
}
