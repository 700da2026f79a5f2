package eventstore

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Typed is implemented by domain events: the type name stored with the
// event is an explicit constant, never derived from a Go type name.
type Typed interface {
	EventType() string
}

// Codec maps domain events of family E (an interface type) to stored
// events and back. Old shapes are upcast on read by registered upcasters.
type Codec[E Typed] struct {
	decoders  map[string]func([]byte) (E, error)
	upcasters map[string]Upcaster
	sealer    sealer  // nil: nothing is sealed and boxes stay closed (see Seal)
	sealing   Sealing // the fields sealer seals
}

// Upcaster rewrites the data of an event stored with an older schema
// version into the current shape.
type Upcaster func(schemaVersion int, data []byte) ([]byte, error)

// NewCodec returns an empty codec.
func NewCodec[E Typed]() *Codec[E] {
	return &Codec[E]{decoders: map[string]func([]byte) (E, error){}, upcasters: map[string]Upcaster{}}
}

// Register adds the concrete event type T (a value type implementing E) to c.
func Register[T any, E Typed](c *Codec[E]) {
	var zero T
	typed, ok := any(zero).(E)
	if !ok {
		panic(fmt.Sprintf("eventstore: %T does not implement the codec's event interface", zero))
	}
	name := typed.EventType()
	if _, dup := c.decoders[name]; dup {
		panic("eventstore: event type registered twice: " + name)
	}
	c.decoders[name] = func(data []byte) (E, error) {
		var t T
		if err := json.Unmarshal(data, &t); err != nil {
			var none E
			return none, err
		}
		return any(t).(E), nil
	}
}

// NewCodecOf returns a codec for the event types of samples (one value of
// each concrete type, as a domain package lists them). A type whose
// pointer implements json.Unmarshaler is decoded by calling its
// UnmarshalJSON directly, without encoding/json's validation pass and
// reflection around it (most of the cost for a hand-written decoder): that
// method must reject invalid JSON itself, as one does that falls back to
// json.Unmarshal for any input it does not fully parse.
func NewCodecOf[E Typed](samples ...E) *Codec[E] {
	c := NewCodec[E]()
	for _, sample := range samples {
		t := reflect.TypeOf(sample)
		name := sample.EventType()
		if _, dup := c.decoders[name]; dup {
			panic("eventstore: event type registered twice: " + name)
		}
		c.decoders[name] = func(data []byte) (E, error) {
			p := reflect.New(t)
			var err error
			if u, ok := p.Interface().(json.Unmarshaler); ok {
				err = u.UnmarshalJSON(data) // see NewCodecOf: it rejects invalid JSON itself
			} else {
				err = json.Unmarshal(data, p.Interface())
			}
			if err != nil {
				var none E
				return none, err
			}
			return p.Elem().Interface().(E), nil
		}
	}
	return c
}

// Upcast registers an upcaster for an event type.
func (c *Codec[E]) Upcast(eventType string, u Upcaster) { c.upcasters[eventType] = u }

// Encode turns domain events into events to append, all with meta.
func (c *Codec[E]) Encode(meta Metadata, events []E) ([]EventData, error) {
	out := make([]EventData, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
		}
		if c.sealer != nil {
			if data, err = c.sealing.seal(c.sealer, e.EventType(), data); err != nil {
				return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
			}
		}
		out[i] = EventData{Type: e.EventType(), Data: data, Metadata: meta}
	}
	return out, nil
}

// Decode turns a stored event into its domain event: sealed fields are
// opened (see Seal), then old shapes upcast.
func (c *Codec[E]) Decode(e Event) (E, error) {
	dec, ok := c.decoders[e.Type]
	if !ok {
		var none E
		return none, fmt.Errorf("decode %s: unknown event type %q", e, e.Type)
	}
	data := []byte(e.Data)
	if c.sealer != nil {
		var err error
		if data, err = c.sealing.open(c.sealer, e.Type, data); err != nil {
			var none E
			return none, fmt.Errorf("decode %s: %w", e, err)
		}
	}
	if up, ok := c.upcasters[e.Type]; ok {
		var err error
		if data, err = up(e.Metadata.SchemaVersion, data); err != nil {
			var none E
			return none, fmt.Errorf("upcast %s: %w", e, err)
		}
	}
	v, err := dec(data)
	if err != nil {
		return v, fmt.Errorf("decode %s: %w", e, err)
	}
	return v, nil
}

// Knows reports whether the codec decodes events of this type.
func (c *Codec[E]) Knows(eventType string) bool { _, ok := c.decoders[eventType]; return ok }
