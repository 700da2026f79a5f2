package identity

import (
	"errors"
	"testing"
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
