package eventstore_test

import (
	"testing"

	"github.com/coinledger/coinledger/eventstore"
)

func TestGlobalChainCoversOrderAndEveryEvent(t *testing.T) {
	events := make([]eventstore.Event, 4)
	for i := range events {
		events[i] = eventstore.Event{Stream: "s", Revision: uint64(i), Hash: eventstore.Hash{byte(i + 1)}}
	}
	head := func(es ...eventstore.Event) eventstore.Hash {
		var g eventstore.GlobalChain
		for _, e := range es {
			g.Add(e)
		}
		return g.Head
	}
	all := head(events...)
	if g := (eventstore.GlobalChain{}); g.Head != (eventstore.Hash{}) || g.Events != 0 {
		t.Fatal("the empty chain is not zero")
	}
	for name, es := range map[string][]eventstore.Event{
		"truncated":      events[:3],
		"middle deleted": {events[0], events[2], events[3]},
		"swapped":        {events[0], events[2], events[1], events[3]},
		"first deleted":  events[1:],
		"event repeated": {events[0], events[1], events[1], events[2], events[3]},
	} {
		if head(es...) == all {
			t.Errorf("%s: same head", name)
		}
	}
	// The link is a function of the previous link, the ordinal and the event's hash.
	if eventstore.GlobalLink(eventstore.Hash{}, 1, events[0]) == eventstore.GlobalLink(eventstore.Hash{}, 2, events[0]) {
		t.Error("the ordinal is not covered")
	}
}
