package identity

import "slices"

// TypeAPISetsGranted is the event type of APISetsGranted.
const TypeAPISetsGranted = "identity.api_sets_granted"

// APISetsGranted: the user may call the methods of these API sets over
// JSON-RPC, and no others (a Graphene permission map's allowed_apis, kept
// when the map is imported). A user without this event is not limited by
// API set.
type APISetsGranted struct {
	APIs []string `json:"apis"`
}

func (APISetsGranted) EventType() string { return TypeAPISetsGranted }

// APISets returns the API sets the user may call over JSON-RPC, sorted;
// nil when it is not limited by API set (an empty, non-nil list: none).
func (u *User) APISets() []string { return slices.Clone(u.apiSets) }

// MaxAPISets bounds the API sets one user holds.
const MaxAPISets = 32

// GrantAPISets decides limiting u to the API sets apis (replacing an
// earlier list). Names are 1-64 of a-z 0-9 _ and repeats are dropped. The
// same list again decides nothing.
func GrantAPISets(u *User, apis []string) ([]Event, error) {
	op := "grant api sets to " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if len(apis) > MaxAPISets {
		return nil, invalid(op, "at most %d api sets", MaxAPISets)
	}
	out := make([]string, 0, len(apis))
	for _, a := range apis {
		if !validAPISet(a) {
			return nil, invalid(op, "api set %q is not 1-64 of a-z 0-9 _", clip(a))
		}
		out = append(out, a)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if u.apiSets != nil && slices.Equal(out, u.apiSets) {
		return nil, nil
	}
	return []Event{APISetsGranted{APIs: out}}, nil
}

func validAPISet(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
