package identity

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestCredentialFieldsCoverEveryCredential: each listed field is a JSON
// field of its event type, and every field of any user event that looks
// like a credential (a hash, a salt, a token id) is listed.
func TestCredentialFieldsCoverEveryCredential(t *testing.T) {
	listed := CredentialFields()
	known := map[string]bool{}
	for _, e := range Events() {
		known[e.EventType()] = true
		rt := reflect.TypeOf(e)
		var names []string
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			names = append(names, name)
			looksSecret := strings.Contains(name, "hash") || strings.Contains(name, "salt") ||
				strings.HasSuffix(name, "token_id") || strings.Contains(name, "secret")
			if looksSecret && !slices.Contains(listed[e.EventType()], name) {
				t.Errorf("%s.%s looks like a credential but is not in CredentialFields", e.EventType(), name)
			}
		}
		for _, f := range listed[e.EventType()] {
			if !slices.Contains(names, f) {
				t.Errorf("CredentialFields names %s.%s, which the event does not have", e.EventType(), f)
			}
		}
	}
	for typ := range listed {
		if !known[typ] {
			t.Errorf("CredentialFields names unknown event type %s", typ)
		}
	}
}
