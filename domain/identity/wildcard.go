package identity

// TypeWildcardDesignated is the event type of WildcardDesignated.
const TypeWildcardDesignated = "identity.wildcard_designated"

// WildcardDesignated: the user stands for the "*" entry of an imported
// Graphene permission map. A login whose username is not registered is
// checked against this user's password (Graphene's fallback rule).
//
// Only this event turns the fallback on: a user registered by hand under
// the same name is an ordinary user, so creating it does not silently open
// the service to every unknown username.
type WildcardDesignated struct{}

func (WildcardDesignated) EventType() string { return TypeWildcardDesignated }

// Wildcard reports whether u stands for the "*" entry (WildcardDesignated).
func (u *User) Wildcard() bool { return u.wildcard }

// DesignateWildcard decides making u the "*" user. u must be registered and
// hold no role: a login that proves nothing about who the caller is must
// never carry admin, auditor or price-feeder powers (SetRoles refuses roles
// for a wildcard user too). Designating the wildcard user again decides
// nothing.
func DesignateWildcard(u *User) ([]Event, error) {
	op := "designate " + u.Username + " as the wildcard user"
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if u.wildcard {
		return nil, nil
	}
	if len(u.Roles) > 0 {
		return nil, invalid(op, "the user holds roles %v; the wildcard user may hold none", u.Roles)
	}
	return []Event{WildcardDesignated{}}, nil
}
