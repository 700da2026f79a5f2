package users_test

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/users"
	"github.com/coinledger/coinledger/test/background"
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// TestHostileTextCatchesUp appends user events straight to the store whose
// texts Postgres text refuses: a user name with a NUL byte (from the stream
// name) with an e-mail holding one and a wallet grant on a name holding one,
// a user name with raw invalid UTF-8 with an e-mail holding raw invalid
// UTF-8 in its JSON (the decoder turns it into U+FFFD). On every read-model
// database the projection must catch up past them and keep running (later
// events, keyed by those names, are applied), and List must return every
// text as the events hold it.
func TestHostileTextCatchesUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		store, db := dbtest.NewStore(t), newDB(t)
		codec := eventstore.NewCodecOf(identity.Events()...)
		// appendUser encodes events, replaces EMAIL in their JSON by raw and
		// appends them to name's stream.
		appendUser := func(name, raw string, events ...identity.Event) uint64 {
			data, err := codec.Encode(eventstore.Metadata{Actor: "test"}, events)
			must(t, err)
			for i := range data {
				data[i].Data = bytes.ReplaceAll(data[i].Data, []byte("EMAIL"), []byte(raw))
			}
			res, err := store.Append(ctx, "user-"+name, eventstore.Any, data...)
			must(t, err)
			return res.Position
		}
		const nulName, badName = "nul\x00name", "bad\xffname"
		appendUser("plain", "plain@example.com", identity.UserRegistered{Username: "plain", Email: "EMAIL", Roles: []string{}})
		appendUser(nulName, `a\u0000b@example.com`, identity.UserRegistered{Username: nulName, Email: "EMAIL", Roles: []string{"auditor"}},
			identity.WalletGranted{Wallet: "w\x00", Permissions: []string{"read"}})
		last := appendUser(badName, "x\xffy@example.com", identity.UserRegistered{Username: badName, Email: "EMAIL", Roles: []string{}})

		r := projections.NewRunner(db, store, projections.Options{}, users.New())
		stop := background.Run(t, false, r.Run)
		wait := func(pos uint64) {
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			must(t, r.WaitFor(ctx, "users", pos))
		}
		wait(last)
		last = appendUser(nulName, "", identity.RolesChanged{Roles: []string{"admin"}}, identity.WalletGranted{Wallet: "w\x00", Permissions: []string{"read", "transfer"}})
		last = max(last, appendUser(badName, "", identity.UserDisabled{}))
		wait(last)
		must(t, stop())

		got, err := users.List(ctx, db)
		must(t, err)
		want := []users.User{
			{Username: badName, Email: "x\uFFFDy@example.com", Roles: []string{}, Disabled: true},
			{Username: nulName, Email: "a\x00b@example.com", Roles: []string{"admin"},
				Grants: []users.Grant{{Wallet: "w\x00", Permissions: []string{"read", "transfer"}}}},
			{Username: "plain", Email: "plain@example.com", Roles: []string{}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("users\n%#v\nwant\n%#v", got, want)
		}
	})
}
