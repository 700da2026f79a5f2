package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
)

func TestRegister(t *testing.T) {
	cases := []struct {
		name    string
		given   []Event
		user    string
		roles   []string
		wantErr error
	}{
		{"new user", nil, "alice", []string{RoleAdmin}, nil},
		{"exists", []Event{UserRegistered{Username: "alice", PasswordHash: "h"}}, "alice", nil, ErrUserExists},
		{"bad name", nil, "Alice!", nil, ErrValidation},
		{"bad role", nil, "bob", []string{"root"}, ErrValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := New()
			for _, e := range tc.given {
				u = Evolve(u, e)
			}
			events, err := Register(u, tc.user, "", "hash", tc.roles)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				u = Evolve(u, events[0])
				if !u.Registered || u.Username != tc.user || u.PasswordHash != "hash" {
					t.Fatalf("state %+v", u)
				}
			}
		})
	}
}

// TestRegisterEmail: an e-mail address, when given, is a bare address;
// display names, brackets, control characters and the like are refused.
func TestRegisterEmail(t *testing.T) {
	for _, email := range []string{"", "alice@example.com", "a.b+tag@sub.example.org", "x@localhost", "jörg@example.de"} {
		if _, err := Register(New(), "alice", email, "hash", nil); err != nil {
			t.Errorf("email %q refused: %v", email, err)
		}
	}
	for _, email := range []string{
		"alice", "@example.com", "alice@", "Alice <alice@example.com>", "<alice@example.com>", "alice@example.com (Alice)",
		" alice@example.com", "alice@example.com ", "alice@example.com\x00", "a\x00b@example.com", "alice@exa\nmple.com",
		"a@b@c", `"alice smith"@example.com`, "alice@example.com, bob@example.com", "alice@@example.com",
		"al..ice@example.com", "alice@" + strings.Repeat("a", MaxEmail) + ".com",
	} {
		if _, err := Register(New(), "alice", email, "hash", nil); !errors.Is(err, ErrValidation) {
			t.Errorf("email %q: err %v, want ErrValidation", email, err)
		}
	}
}

func TestChangePassword(t *testing.T) {
	if _, err := ChangePassword(New(), "h"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("err %v", err)
	}
	u := Evolve(New(), UserRegistered{Username: "a", PasswordHash: "old"})
	events, err := ChangePassword(u, "new")
	if err != nil || Evolve(u, events[0]).PasswordHash != "new" {
		t.Fatalf("change: %v %+v", err, u)
	}
}

// TestMayUse: a user may use permissions on a wallet the wallet allows and
// its grant holds (an admin: whatever the wallet allows), not once disabled.
func TestMayUse(t *testing.T) {
	allowed := []ledger.Permission{ledger.PermRead, ledger.PermWebhooks}
	user := func(roles []string, grant []string, disabled bool) *User {
		u := &User{}
		Evolve(u, UserRegistered{Username: "u", Roles: roles})
		if grant != nil {
			Evolve(u, WalletGranted{Wallet: "w", Permissions: grant})
		}
		if disabled {
			Evolve(u, UserDisabled{})
		}
		return u
	}
	tests := []struct {
		name string
		u    *User
		want bool
	}{
		{"granted", user(nil, []string{"read", "webhooks"}, false), true},
		{"read only", user(nil, []string{"read"}, false), false},
		{"no grant", user(nil, nil, false), false},
		{"admin", user([]string{RoleAdmin}, nil, false), true},
		{"disabled", user(nil, []string{"read", "webhooks"}, true), false},
	}
	for _, tt := range tests {
		if got := tt.u.MayUse("w", allowed, ledger.PermRead, ledger.PermWebhooks); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if user(nil, []string{"read", "webhooks", "transfer"}, false).MayUse("w", allowed, ledger.PermTransfer) {
		t.Error("a permission the wallet does not allow was usable")
	}
}
