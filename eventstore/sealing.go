package eventstore

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Sealing names, per event type, the top-level fields of an event's JSON
// data that hold credential material: values the service needs to rebuild
// its state from the log but no reader of the log may see (password hashes,
// API key hashes, refresh token ids).
//
// A codec configured with Codec.Seal writes those fields into one sealed
// box, the member SealedField, instead of in the clear:
//
//	{"username":"bob","password_hash":"$2a$…","roles":[]}   (the domain event)
//	{"roles":[],"sealed":"seal1:…","username":"bob"}          (what is stored)
//
// The hash chain covers the stored bytes, box included, so a reader of the
// log verifies every hash without being able to open the box. Events stored
// before their type was sealed still hold the fields in the clear: they
// decode as they are, and readers that show the log to people hide the
// fields with Redact.
type Sealing map[string][]string

// SealedField is the data member that holds an event's sealed fields.
const SealedField = "sealed"

// Redacted replaces a credential field that Redact hides.
const Redacted = "[redacted]"

// sealer encrypts and authenticates small values (eventstore/seal.Keyring).
type sealer interface {
	Seal(plaintext, aad []byte) (string, error)
	Open(box string, aad []byte) ([]byte, error)
}

// Seal makes c seal, with s, the fields that sealing names: Encode writes
// them into the member SealedField and Decode opens it again (an event
// stored in the clear decodes as it is). A codec on which Seal was not
// called leaves the box closed and decodes the event without those fields:
// consumers that need no credential (read models) need no key.
func (c *Codec[E]) Seal(s sealer, sealing Sealing) {
	c.sealer, c.sealing = s, sealing
}

// aad binds a box to the event type it was sealed for.
func aad(eventType string) []byte { return []byte("coinledger/sealed\x00" + eventType) }

// seal moves the sealed fields of data, an event of type typ, into a box.
func (s Sealing) seal(box sealer, typ string, data []byte) ([]byte, error) {
	fields := s[typ]
	if len(fields) == 0 {
		return data, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	if _, clash := m[SealedField]; clash {
		return nil, fmt.Errorf("seal %s: the event has a member named %q", typ, SealedField)
	}
	secret := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		if v, ok := m[f]; ok {
			secret[f] = v
			delete(m, f)
		}
	}
	if len(secret) == 0 {
		return data, nil
	}
	plain, err := json.Marshal(secret)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	b, err := box.Seal(plain, aad(typ))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	if m[SealedField], err = json.Marshal(b); err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	return json.Marshal(m)
}

// open puts the sealed fields of data, an event of type typ, back in the
// clear. Data without a box (stored before the type was sealed) is returned
// as it is.
func (s Sealing) open(box sealer, typ string, data []byte) ([]byte, error) {
	if len(s[typ]) == 0 {
		return data, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("open sealed fields: %w", err)
	}
	raw, ok := m[SealedField]
	if !ok {
		return data, nil
	}
	var b string
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("open sealed fields: %q is not a string", SealedField)
	}
	plain, err := box.Open(b, aad(typ))
	if err != nil {
		return nil, fmt.Errorf("open sealed fields: %w", err)
	}
	var secret map[string]json.RawMessage
	if err := json.Unmarshal(plain, &secret); err != nil {
		return nil, fmt.Errorf("open sealed fields: %w", err)
	}
	delete(m, SealedField)
	for k, v := range secret {
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("open sealed fields: %s is both sealed and in the clear", k)
		}
		m[k] = v
	}
	return json.Marshal(m)
}

// Redact returns the data of e with every field that s names for e's type
// replaced by the string Redacted, and whether any was. Such fields appear
// in the clear only in events stored before their type was sealed; a box
// is left as it is (it shows nothing). A redacted event's hash can no longer
// be recomputed from what is shown: see Verifier.Link.
func (s Sealing) Redact(e Event) (json.RawMessage, bool) {
	fields := s[e.Type]
	if len(fields) == 0 {
		return e.Data, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &m); err != nil {
		return e.Data, false // not an object: it has no fields
	}
	redacted := false
	for k := range m {
		if slices.Contains(fields, k) {
			m[k] = json.RawMessage(`"` + Redacted + `"`)
			redacted = true
		}
	}
	if !redacted {
		return e.Data, false
	}
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`{}`), true // cannot happen: m was just decoded
	}
	return out, true
}
