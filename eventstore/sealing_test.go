package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
)

type credEvent interface{ EventType() string }

type passwordSet struct {
	User string `json:"user"`
	Hash string `json:"hash"`
	Salt string `json:"salt,omitempty"`
}

func (passwordSet) EventType() string { return "test.password_set" }

var testSealing = eventstore.Sealing{"test.password_set": {"hash", "salt"}}

func sealedCodec(k *seal.Keyring) *eventstore.Codec[credEvent] {
	c := eventstore.NewCodecOf[credEvent](passwordSet{})
	if k != nil {
		c.Seal(k, testSealing)
	}
	return c
}

// appendAndRead stores events as they are and reads them back.
func appendAndRead(t *testing.T, store eventstore.Store, stream string, data ...eventstore.EventData) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	if _, err := store.Append(ctx, stream, eventstore.Any, data...); err != nil {
		t.Fatal(err)
	}
	events, err := store.ReadStream(ctx, stream, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TestSealedFieldsAreStoredEncryptedAndChained: a sealing codec stores the
// credential fields in a box only the key opens; the hash chain verifies
// over the stored bytes; a codec without the key decodes the rest.
func TestSealedFieldsAreStoredEncryptedAndChained(t *testing.T) {
	store := sqlitetest.Open(t)
	k := seal.Random()
	codec := sealedCodec(k)
	want := passwordSet{User: "bob", Hash: "$2a$04$bcrypthashbcrypthashbcrypthash", Salt: "c2FsdHNhbHQ="}
	data, err := codec.Encode(eventstore.Metadata{Actor: "test"}, []credEvent{want})
	if err != nil {
		t.Fatal(err)
	}
	stored := appendAndRead(t, store, "user-bob", data...)[0]
	raw := string(stored.Data)
	if strings.Contains(raw, want.Hash) || strings.Contains(raw, want.Salt) || strings.Contains(raw, `"hash"`) ||
		!strings.Contains(raw, `"sealed":"seal1:`) || !strings.Contains(raw, `"user":"bob"`) {
		t.Fatalf("stored data %s", raw)
	}
	if err := eventstore.NewVerifier().Verify(stored); err != nil {
		t.Fatalf("chain over sealed data: %v", err)
	}
	got, err := codec.Decode(stored)
	if err != nil || got != want {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if red, ok := testSealing.Redact(stored); ok || string(red) != raw {
		t.Fatalf("a sealed event was redacted: %s", red)
	}

	// A codec without the key (a read model) decodes the other fields.
	plain, err := sealedCodec(nil).Decode(stored)
	if err != nil || plain != (passwordSet{User: "bob"}) {
		t.Fatalf("decode without the key: %+v %v", plain, err)
	}
	// A codec with another key refuses: it must not run on empty hashes.
	if _, err := sealedCodec(seal.Random()).Decode(stored); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("decode with another key: %v", err)
	}
	// A box moved to another event type does not open.
	moved := stored
	moved.Type = "test.other"
	other := eventstore.NewCodecOf[credEvent](otherEvent{})
	other.Seal(k, eventstore.Sealing{"test.other": {"hash"}})
	if _, err := other.Decode(moved); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("box opened under another event type: %v", err)
	}
}

type otherEvent struct {
	Hash string `json:"hash"`
}

func (otherEvent) EventType() string { return "test.other" }

// TestClearCredentialsOfOldEvents: an event stored before its type was
// sealed decodes as it is; Redact hides its credential fields; a verifier
// links over it and still verifies the next event.
func TestClearCredentialsOfOldEvents(t *testing.T) {
	store := sqlitetest.Open(t)
	codec := sealedCodec(seal.Random())
	old := eventstore.EventData{Type: "test.password_set",
		Data: []byte(`{"user":"ann","hash":"$2a$04$plainplainplainplain","salt":"old-salt"}`)}
	events := appendAndRead(t, store, "user-ann", old)
	next, err := codec.Encode(eventstore.Metadata{}, []credEvent{passwordSet{User: "ann", Hash: "$2a$04$newnewnewnew"}})
	if err != nil {
		t.Fatal(err)
	}
	events = appendAndRead(t, store, "user-ann", next...)
	got, err := codec.Decode(events[0])
	if err != nil || got != (passwordSet{User: "ann", Hash: "$2a$04$plainplainplainplain", Salt: "old-salt"}) {
		t.Fatalf("decode an old event: %+v %v", got, err)
	}
	red, ok := testSealing.Redact(events[0])
	if !ok || strings.Contains(string(red), "plain") || strings.Contains(string(red), "old-salt") ||
		!strings.Contains(string(red), `"hash":"[redacted]"`) || !strings.Contains(string(red), `"user":"ann"`) {
		t.Fatalf("redacted %s, %v", red, ok)
	}
	shown := events[0]
	shown.Data = red
	v := eventstore.NewVerifier()
	if err := v.Verify(shown); err == nil {
		t.Fatal("a redacted event verified: the hash does not cover the data")
	}
	if err := v.Link(shown); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(events[1]); err != nil {
		t.Fatalf("the event after a linked one: %v", err)
	}
	if v.Events != 1 || v.Linked != 1 {
		t.Fatalf("verified %d, linked %d", v.Events, v.Linked)
	}
	// Link still checks the order.
	if err := eventstore.NewVerifier().Link(events[1]); err == nil {
		t.Fatal("Link accepted revision 1 as the first event")
	}
}
