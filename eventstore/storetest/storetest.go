// Package storetest is the conformance suite of eventstore.Store: every
// implementation runs Run against a fresh store and must pass all of it.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

// Run runs the suite. newStore returns a store for the test (it may be shared
// by the parallel subtests: every subtest uses fresh stream names).
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	s := newStore(t)
	tests := []struct {
		name string
		fn   func(*testing.T, eventstore.Store)
	}{
		{"AppendAndReadStream", testAppendAndRead},
		{"ExpectedVersions", testExpectedVersions},
		{"InvalidEventsWriteNothing", testInvalid},
		{"IdempotentRetry", testIdempotentRetry},
		{"PartialRetryConflicts", testPartialRetry},
		{"RetryNeedsTheSameContents", testRetryContents},
		{"RetryOnlyAtTheOriginalPlace", testRetryPlace},
		{"KeyedIDsFollowTheContents", testKeyedIDs},
		{"HashChain", testHashChain},
		{"MetadataRoundTrip", testMetadata},
		{"ReadAllGlobalOrder", testReadAll},
		{"LargeBatch", testLargeBatch},
		{"SubscribeCatchUpThenLive", testSubscribe},
		{"SubscribeResumeFromPosition", testResume},
		{"ConcurrentExactAppendsOneStream", testConcurrentExact},
		{"ConcurrentAnyAppendsOneStream", testConcurrentAny},
		{"ConcurrentAppendsManyStreams", testConcurrentMany},
		{"ImportKeepsEventsAsTheyAre", testImport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

// Stream returns a stream name no other test uses.
func Stream(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
}

// Events returns n events of type typ numbered from start.
func Events(typ string, start, n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = eventstore.EventData{Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"n": %d}`, start+i))}
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// MustAppend appends or fails the test.
func MustAppend(t testing.TB, s eventstore.Store, stream string, v eventstore.ExpectedVersion, events ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), stream, v, events...)
	if err != nil {
		t.Fatalf("append %s@%s: %v", stream, v, err)
	}
	return res
}

// MustRead reads a whole stream or fails the test.
func MustRead(t testing.TB, s eventstore.Store, stream string) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	for {
		events, err := s.ReadStream(context.Background(), stream, uint64(len(all)), 1000)
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		all = append(all, events...)
		if len(events) < 1000 {
			return all
		}
	}
}

func number(t testing.TB, e eventstore.Event) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("data of %s: %v", e, err)
	}
	return v.N
}

func testAppendAndRead(t *testing.T, s eventstore.Store) {
	stream := Stream("read")
	if got, err := s.ReadStream(ctx(t), stream, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("missing stream: got %d events, err %v; want none, nil", len(got), err)
	}
	r1 := MustAppend(t, s, stream, eventstore.NoStream, Events("t.a", 0, 3)...)
	if r1.NextRevision != 3 {
		t.Fatalf("next revision %d, want 3", r1.NextRevision)
	}
	r2 := MustAppend(t, s, stream, eventstore.Exact(2), Events("t.b", 3, 2)...)
	if r2.NextRevision != 5 || r2.Position <= r1.Position {
		t.Fatalf("second append %+v after %+v", r2, r1)
	}
	events := MustRead(t, s, stream)
	if len(events) != 5 {
		t.Fatalf("read %d events, want 5", len(events))
	}
	for i, e := range events {
		if e.Revision != uint64(i) || number(t, e) != i || e.Stream != stream {
			t.Fatalf("event %d: %s n=%d", i, e, number(t, e))
		}
		if i > 0 && e.Position <= events[i-1].Position {
			t.Fatalf("positions not increasing: %d then %d", events[i-1].Position, e.Position)
		}
	}
	if events[4].Position != r2.Position || events[2].Position != r1.Position {
		t.Fatalf("append results %+v %+v do not match stored positions", r1, r2)
	}
	if events[0].Type != "t.a" || events[4].Type != "t.b" {
		t.Fatalf("types %q %q", events[0].Type, events[4].Type)
	}
	tail, err := s.ReadStream(ctx(t), stream, 3, 10)
	if err != nil || len(tail) != 2 || tail[0].Revision != 3 {
		t.Fatalf("read from 3: %d events, err %v", len(tail), err)
	}
	head, err := s.Head(ctx(t))
	if err != nil || head < r2.Position {
		t.Fatalf("head %d (err %v), want >= %d", head, err, r2.Position)
	}
}

func testExpectedVersions(t *testing.T, s eventstore.Store) {
	stream := Stream("ev")
	conflict := func(v eventstore.ExpectedVersion) {
		t.Helper()
		_, err := s.Append(ctx(t), stream, v, Events("t.x", 0, 1)...)
		if !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("append %s: err %v, want ErrConflict", v, err)
		}
	}
	conflict(eventstore.StreamExists)
	conflict(eventstore.Exact(0))
	MustAppend(t, s, stream, eventstore.NoStream, Events("t.x", 0, 1)...)
	conflict(eventstore.NoStream)
	conflict(eventstore.Exact(1))
	MustAppend(t, s, stream, eventstore.StreamExists, Events("t.x", 1, 1)...)
	MustAppend(t, s, stream, eventstore.Exact(1), Events("t.x", 2, 1)...)
	MustAppend(t, s, stream, eventstore.Any, Events("t.x", 3, 1)...)
	MustAppend(t, s, Stream("ev-any"), eventstore.Any, Events("t.x", 0, 1)...)
	if n := len(MustRead(t, s, stream)); n != 4 {
		t.Fatalf("stream has %d events after conflicts, want 4", n)
	}
}

func testInvalid(t *testing.T, s eventstore.Store) {
	stream := Stream("invalid")
	big := make([]byte, eventstore.DefaultMaxEventSize+10)
	for i := range big {
		big[i] = 'a'
	}
	bigJSON := json.RawMessage(`"` + string(big) + `"`)
	cases := map[string][]eventstore.EventData{
		"empty type":   {{Type: "", Data: json.RawMessage(`{}`)}},
		"invalid json": {{Type: "t.ok", Data: json.RawMessage(`{"a":`)}},
		"too large":    {{Type: "t.ok", Data: bigJSON}},
		"no events":    {},
		"bad second":   {{Type: "t.ok", Data: json.RawMessage(`{}`)}, {Type: "t.bad", Data: json.RawMessage(`nope`)}},
	}
	for name, events := range cases {
		_, err := s.Append(ctx(t), stream, eventstore.Any, events...)
		if !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: err %v, want ErrInvalidEvent", name, err)
		}
	}
	if n := len(MustRead(t, s, stream)); n != 0 {
		t.Fatalf("invalid appends wrote %d events", n)
	}
}

func testIdempotentRetry(t *testing.T, s eventstore.Store) {
	stream := Stream("idem")
	MustAppend(t, s, stream, eventstore.NoStream, Events("t.a", 0, 1)...)
	batch := withIDs(Events("t.b", 1, 3))
	first := MustAppend(t, s, stream, eventstore.Exact(0), batch...)
	if first.Retry {
		t.Fatalf("first append %+v is marked as a retry", first)
	}
	retry := first
	retry.Retry = true
	again := MustAppend(t, s, stream, eventstore.Exact(0), batch...)
	if again != retry {
		t.Fatalf("retry returned %+v, want the original %+v marked as a retry", again, first)
	}
	anyAgain := MustAppend(t, s, stream, eventstore.Any, batch...)
	if anyAgain != retry {
		t.Fatalf("retry with Any returned %+v, want the original %+v marked as a retry", anyAgain, first)
	}
	// Deterministic ids from an idempotency key dedupe too.
	keyed := Events("t.c", 4, 2)
	for i := range keyed {
		keyed[i].Metadata.IdempotencyKey = "cmd-" + stream
	}
	k1 := MustAppend(t, s, stream, eventstore.Exact(3), keyed...)
	k2 := MustAppend(t, s, stream, eventstore.Exact(3), keyed...)
	if k2 != (eventstore.AppendResult{NextRevision: k1.NextRevision, Position: k1.Position, Retry: true}) || k1.Retry {
		t.Fatalf("keyed retry %+v, original %+v", k2, k1)
	}
	if n := len(MustRead(t, s, stream)); n != 6 {
		t.Fatalf("stream has %d events after retries, want 6", n)
	}
}

// testRetryContents: the same ids with another type, other data or other
// metadata are no retry but a conflict, with every expectation that looks
// for retries; nothing is written.
func testRetryContents(t *testing.T, s eventstore.Store) {
	stream := Stream("contents")
	orig := withIDs(Events("t.a", 0, 2))
	for i := range orig {
		orig[i].Metadata = eventstore.Metadata{Actor: "a", CorrelationID: "c", IdempotencyKey: "k"}
	}
	MustAppend(t, s, stream, eventstore.NoStream, orig...)
	MustAppend(t, s, stream, eventstore.Exact(1), Events("t.z", 9, 1)...)
	changes := map[string]func(*eventstore.EventData){
		"type":     func(e *eventstore.EventData) { e.Type = "t.other" },
		"data":     func(e *eventstore.EventData) { e.Data = json.RawMessage(`{"n": 7}`) },
		"actor":    func(e *eventstore.EventData) { e.Metadata.Actor = "b" },
		"corr":     func(e *eventstore.EventData) { e.Metadata.CorrelationID = "d" },
		"causal":   func(e *eventstore.EventData) { e.Metadata.CausationID = "x" },
		"schema":   func(e *eventstore.EventData) { e.Metadata.SchemaVersion = 2 },
		"key":      func(e *eventstore.EventData) { e.Metadata.IdempotencyKey = "k2" },
		"no key":   func(e *eventstore.EventData) { e.Metadata.IdempotencyKey = "" },
		"1st data": nil, // the first event changed instead of the second
	}
	for what, change := range changes {
		for _, v := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any, eventstore.StreamExists} {
			other := slices.Clone(orig)
			if change == nil {
				other[0].Data = json.RawMessage(`{"n": 8}`)
			} else {
				change(&other[1])
			}
			res, err := s.Append(ctx(t), stream, v, other...)
			if !errors.Is(err, eventstore.ErrConflict) {
				t.Errorf("same ids, other %s, expecting %s: %+v, %v; want ErrConflict", what, v, res, err)
			}
		}
	}
	if n := len(MustRead(t, s, stream)); n != 3 {
		t.Fatalf("stream has %d events, want 3", n)
	}
	// The same contents once more: a retry.
	res := MustAppend(t, s, stream, eventstore.NoStream, orig...)
	if !res.Retry || res.NextRevision != 2 {
		t.Fatalf("retry %+v, want revision 2 marked as a retry", res)
	}

	// Two concurrent appends of one id with other data (in one group
	// commit, where a store makes them): one is written, one conflicts.
	racing := Stream("contents-race")
	id := uuid.New()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Append(ctx(t), racing, eventstore.Any, eventstore.EventData{ID: id, Type: "t.x", Data: json.RawMessage(fmt.Sprintf(`{"v":%d}`, i))})
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), eventstore.ErrConflict) {
		t.Fatalf("two appends of one id with other data: errs %v, want one success and one ErrConflict", errs)
	}
	if n := len(MustRead(t, s, racing)); n != 1 {
		t.Fatalf("stream has %d events, want 1", n)
	}
}

// testRetryPlace: with an exact or no-stream expectation a retry is
// recognised only right after the expected revision, where the original
// went; the same events found elsewhere in the stream are a conflict.
func testRetryPlace(t *testing.T, s eventstore.Store) {
	stream := Stream("place")
	MustAppend(t, s, stream, eventstore.NoStream, Events("t.a", 0, 2)...)
	batch := withIDs(Events("t.b", 2, 2))
	orig := MustAppend(t, s, stream, eventstore.Exact(1), batch...)
	MustAppend(t, s, stream, eventstore.Exact(3), Events("t.c", 4, 1)...)
	for _, v := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(0), eventstore.Exact(2)} {
		if res, err := s.Append(ctx(t), stream, v, batch...); !errors.Is(err, eventstore.ErrConflict) {
			t.Errorf("the events of revisions 2-3 again, expecting %s: %+v, %v; want ErrConflict", v, res, err)
		}
	}
	if res := MustAppend(t, s, stream, eventstore.Exact(1), batch...); !res.Retry || res.Position != orig.Position {
		t.Fatalf("retry at the place: %+v, want %+v marked as a retry", res, orig)
	}
	if n := len(MustRead(t, s, stream)); n != 5 {
		t.Fatalf("stream has %d events, want 5", n)
	}
}

// testKeyedIDs: ids derived from an idempotency key follow the key, the
// event's index among the append's events with that key and the contents
// (eventstore.EventID), not the event's slot in the append: one key's
// events sent alone are recognised where they went with others. The same
// key with other data gets other ids: no retry, a conflict.
func testKeyedIDs(t *testing.T, s eventstore.Store) {
	stream := Stream("keyed")
	keyed := func(key string, start, n int) []eventstore.EventData {
		events := Events("t.k", start, n)
		for i := range events {
			events[i].Metadata.IdempotencyKey = key
		}
		return events
	}
	k1, k2 := keyed("k1", 0, 2), keyed("k2", 10, 1)
	MustAppend(t, s, stream, eventstore.NoStream, append(slices.Clone(k2), k1...)...)
	all := MustRead(t, s, stream)
	want := []eventstore.EventData{k2[0], k1[0], k1[1]}
	for i, index := range []int{0, 0, 1} {
		want[i].Data = all[i].Data // as Prepare made it canonical
		if id := eventstore.EventID(stream, index, want[i]); all[i].ID != id {
			t.Fatalf("event %d has id %s, want EventID %s", i, all[i].ID, id)
		}
	}
	res := MustAppend(t, s, stream, eventstore.Exact(0), k1...)
	if !res.Retry || res.Position != all[2].Position || res.NextRevision != 3 {
		t.Fatalf("k1's events alone where they went: %+v, want a retry at %s", res, all[2])
	}
	if _, err := s.Append(ctx(t), stream, eventstore.Exact(0), keyed("k1", 5, 2)...); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("k1 with other data where the original went: %v; want ErrConflict", err)
	}
	if n := len(MustRead(t, s, stream)); n != 3 {
		t.Fatalf("stream has %d events, want 3", n)
	}
}

// withIDs gives events random ids of the caller's choosing.
func withIDs(events []eventstore.EventData) []eventstore.EventData {
	for i := range events {
		events[i].ID = uuid.New()
	}
	return events
}

func testPartialRetry(t *testing.T, s eventstore.Store) {
	stream := Stream("partial")
	batch := withIDs(Events("t.a", 0, 2))
	MustAppend(t, s, stream, eventstore.NoStream, batch...)
	// Same first id, different second: not a retry.
	other := Events("t.a", 0, 2)
	other[0].ID, other[1].ID = batch[0].ID, uuid.New()
	if _, err := s.Append(ctx(t), stream, eventstore.NoStream, other...); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("partial overlap: err %v, want ErrConflict", err)
	}
	if n := len(MustRead(t, s, stream)); n != 2 {
		t.Fatalf("stream has %d events, want 2", n)
	}
}

func testHashChain(t *testing.T, s eventstore.Store) {
	stream := Stream("chain")
	for i := 0; i < 5; i++ {
		MustAppend(t, s, stream, eventstore.Any, Events("t.h", i*3, 3)...)
	}
	events := MustRead(t, s, stream)
	v := eventstore.NewVerifier()
	for _, e := range events {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
	if v.Events != 15 {
		t.Fatalf("verified %d events, want 15", v.Events)
	}
	tampered := events[7]
	tampered.Data = json.RawMessage(`{"n":999}`)
	v = eventstore.NewVerifier()
	for _, e := range events[:7] {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
	var ce *eventstore.ChainError
	if err := v.Verify(tampered); !errors.As(err, &ce) || ce.Revision != 7 {
		t.Fatalf("tampered event: err %v, want ChainError at 7", err)
	}
}

// chained returns n events of stream from revision from, created at t0,
// their data not compact, hashed in a chain from prev.
func chained(stream string, from uint64, n int, prev eventstore.Hash, t0 time.Time) []eventstore.Event {
	out := make([]eventstore.Event, n)
	for i := range out {
		e := eventstore.Event{ID: uuid.New(), Stream: stream, Revision: from + uint64(i), Type: "t.import",
			Data:     json.RawMessage(fmt.Sprintf(`{ "n" : %d, "sealed":"seal1:abc" }`, i)),
			Metadata: eventstore.Metadata{CorrelationID: "corr", Actor: "user:bob", SchemaVersion: 3},
			Created:  t0.Add(time.Duration(i) * time.Microsecond)}
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		out[i] = e
	}
	return out
}

// testImport: a store that is an eventstore.Importer stores imported events
// with their ids, data bytes, metadata, times and hashes, in the given order
// across streams, and refuses an event that does not come next in its stream.
func testImport(t *testing.T, s eventstore.Store) {
	imp, ok := s.(eventstore.Importer)
	if !ok {
		t.Skip("the store is not an eventstore.Importer")
	}
	a, b := Stream("import-a"), Stream("import-b")
	t0 := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	ea, eb := chained(a, 0, 5, eventstore.Hash{}, t0), chained(b, 0, 3, eventstore.Hash{}, t0)
	// Interleaved: a0 a1 b0 a2 b1 b2 a3 a4.
	order := []eventstore.Event{ea[0], ea[1], eb[0], ea[2], eb[1], eb[2], ea[3], ea[4]}
	if _, err := imp.Import(ctx(t), order[:4]); err != nil {
		t.Fatal(err)
	}
	if _, err := imp.Import(ctx(t), order[4:]); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string][]eventstore.Event{a: ea, b: eb} {
		got := MustRead(t, s, stream)
		v := eventstore.NewVerifier()
		for i := range got {
			if err := v.Verify(got[i]); err != nil {
				t.Fatal(err)
			}
			w := want[i]
			w.Position = got[i].Position
			if !reflect.DeepEqual(got[i], w) {
				t.Fatalf("imported event %d of %s:\n got  %+v\n want %+v", i, stream, got[i], w)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s has %d events, want %d", stream, len(got), len(want))
		}
	}
	all := collect(t, s, 0, "import-")
	var mine []uuid.UUID
	for _, e := range all {
		if e.Stream == a || e.Stream == b {
			mine = append(mine, e.ID)
		}
	}
	for i, e := range order {
		if i >= len(mine) || mine[i] != e.ID {
			t.Fatalf("global order of the imported events differs at %d", i)
		}
	}
	// Not next in its stream: a conflict, nothing written.
	again := chained(a, 2, 1, ea[1].Hash, t0)
	if _, err := imp.Import(ctx(t), again); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("import of revision 2 of a stream at 5: %v, want ErrConflict", err)
	}
	if n := len(MustRead(t, s, a)); n != 5 {
		t.Fatalf("a refused import left %d events, want 5", n)
	}
	// Appends continue the imported chain.
	MustAppend(t, s, a, eventstore.Exact(4), Events("t.after", 0, 1)...)
	v := eventstore.NewVerifier()
	for _, e := range MustRead(t, s, a) {
		if err := v.Verify(e); err != nil {
			t.Fatalf("after an append to an imported stream: %v", err)
		}
	}
}

func testMetadata(t *testing.T, s eventstore.Store) {
	stream := Stream("meta")
	id := uuid.New()
	meta := eventstore.Metadata{CorrelationID: "corr-1", CausationID: "cause-1", Actor: "user:alice",
		SchemaVersion: 2, IdempotencyKey: "key-" + stream}
	before := time.Now().Add(-time.Minute)
	MustAppend(t, s, stream, eventstore.NoStream, eventstore.EventData{ID: id, Type: "t.meta",
		Data: json.RawMessage(`{ "a" : [1, 2] }`), Metadata: meta})
	e := MustRead(t, s, stream)[0]
	if e.ID != id || e.Metadata != meta {
		t.Fatalf("read id %s meta %+v, want %s %+v", e.ID, e.Metadata, id, meta)
	}
	if string(e.Data) != `{"a":[1,2]}` {
		t.Fatalf("data %s, want compact JSON", e.Data)
	}
	if e.Created.Before(before) || e.Created.After(time.Now().Add(time.Minute)) || e.Created.Location() != time.UTC {
		t.Fatalf("created %v", e.Created)
	}
	if e.Created.Nanosecond()%1000 != 0 {
		t.Fatalf("created %v has sub-microsecond digits", e.Created)
	}
}

// collect reads every event after `after` whose stream has prefix.
func collect(t *testing.T, s eventstore.Store, after uint64, prefix string) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for {
		events, err := s.ReadAll(ctx(t), after, 500)
		if err != nil {
			t.Fatalf("read all after %d: %v", after, err)
		}
		if len(events) == 0 {
			return out
		}
		for i, e := range events {
			if e.Position <= after || (i > 0 && e.Position <= events[i-1].Position) {
				t.Fatalf("read all after %d: position %d out of order", after, e.Position)
			}
			if strings.HasPrefix(e.Stream, prefix) {
				out = append(out, e)
			}
		}
		after = events[len(events)-1].Position
	}
}

func testReadAll(t *testing.T, s eventstore.Store) {
	prefix := Stream("all")
	start, err := s.Head(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		MustAppend(t, s, fmt.Sprintf("%s-%d", prefix, i%3), eventstore.Any, Events("t.all", i, 1)...)
	}
	got := collect(t, s, start, prefix)
	if len(got) != 6 {
		t.Fatalf("read all found %d of 6 events", len(got))
	}
	for i, e := range got {
		if number(t, e) != i {
			t.Fatalf("global order: event %d has n=%d", i, number(t, e))
		}
	}
	if rest := collect(t, s, got[2].Position, prefix); len(rest) != 3 || number(t, rest[0]) != 3 {
		t.Fatalf("read all after %d: %d events", got[2].Position, len(rest))
	}
}

func testLargeBatch(t *testing.T, s eventstore.Store) {
	stream := Stream("large")
	const n = 5000
	res := MustAppend(t, s, stream, eventstore.NoStream, Events("t.l", 0, n)...)
	if res.NextRevision != n {
		t.Fatalf("next revision %d, want %d", res.NextRevision, n)
	}
	events := MustRead(t, s, stream)
	if len(events) != n || number(t, events[n-1]) != n-1 {
		t.Fatalf("read %d events", len(events))
	}
	v := eventstore.NewVerifier()
	for _, e := range events {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
}

// subscribeUntil subscribes after `after` and returns the events of streams
// with prefix once want of them have arrived.
func subscribeUntil(t *testing.T, s eventstore.Store, after uint64, prefix string, want int, during func()) []eventstore.Event {
	t.Helper()
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	var got []eventstore.Event
	var last uint64 = after
	errc := make(chan error, 1)
	go func() {
		errc <- s.Subscribe(c, after, func(_ context.Context, batch []eventstore.Event) error {
			if len(batch) == 0 {
				return errors.New("empty batch")
			}
			for _, e := range batch {
				if e.Position <= last {
					return fmt.Errorf("position %d after %d: out of order or repeated", e.Position, last)
				}
				last = e.Position
				if strings.HasPrefix(e.Stream, prefix) {
					got = append(got, e)
				}
			}
			if len(got) >= want {
				return errDone
			}
			return nil
		})
	}()
	if during != nil {
		during()
	}
	if err := <-errc; !errors.Is(err, errDone) {
		t.Fatalf("subscribe: %v (got %d of %d events)", err, len(got), want)
	}
	return got
}

var errDone = errors.New("done")

func testSubscribe(t *testing.T, s eventstore.Store) {
	prefix := Stream("sub")
	start, _ := s.Head(ctx(t))
	for i := 0; i < 20; i++ {
		MustAppend(t, s, prefix, eventstore.Any, Events("t.s", i, 1)...)
	}
	got := subscribeUntil(t, s, start, prefix, 40, func() {
		time.Sleep(50 * time.Millisecond) // let the subscription go live
		for i := 20; i < 40; i += 2 {
			MustAppend(t, s, prefix, eventstore.Any, Events("t.s", i, 2)...)
		}
	})
	for i, e := range got {
		if number(t, e) != i {
			t.Fatalf("subscription event %d has n=%d", i, number(t, e))
		}
	}
}

func testResume(t *testing.T, s eventstore.Store) {
	prefix := Stream("resume")
	start, _ := s.Head(ctx(t))
	for i := 0; i < 10; i++ {
		MustAppend(t, s, prefix, eventstore.Any, Events("t.r", i, 1)...)
	}
	first := subscribeUntil(t, s, start, prefix, 4, nil)
	rest := subscribeUntil(t, s, first[3].Position, prefix, 6, nil)
	if number(t, rest[0]) != 4 || number(t, rest[5]) != 9 {
		t.Fatalf("resume after %d: got n=%d..%d, want 4..9", first[3].Position, number(t, rest[0]), number(t, rest[5]))
	}
}

func testConcurrentExact(t *testing.T, s eventstore.Store) {
	stream := Stream("race")
	MustAppend(t, s, stream, eventstore.NoStream, Events("t.c", 0, 1)...)
	const writers, rounds = 8, 10
	for round := 0; round < rounds; round++ {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Append(context.Background(), stream, eventstore.Exact(uint64(round)), Events("t.c", round+1, 1)...)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, eventstore.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("append: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != writers-1 {
			t.Fatalf("round %d: %d wins, %d conflicts; want 1 and %d", round, wins.Load(), conflicts.Load(), writers-1)
		}
	}
	if n := len(MustRead(t, s, stream)); n != rounds+1 {
		t.Fatalf("stream has %d events, want %d", n, rounds+1)
	}
}

func testConcurrentAny(t *testing.T, s eventstore.Store) {
	stream := Stream("anyrace")
	const writers, each = 16, 10
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Append(context.Background(), stream, eventstore.Any, Events("t.any", (w*each+i)*2, 2)...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	events := MustRead(t, s, stream)
	if len(events) != writers*each*2 {
		t.Fatalf("stream has %d events, want %d", len(events), writers*each*2)
	}
	v := eventstore.NewVerifier()
	for i, e := range events {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
		// One append's two events stay adjacent.
		if i%2 == 1 && number(t, e) != number(t, events[i-1])+1 {
			t.Fatalf("events of one append split at revision %d", i)
		}
	}
}

func testConcurrentMany(t *testing.T, s eventstore.Store) {
	prefix := Stream("many")
	start, _ := s.Head(ctx(t))
	const streams, each = 32, 10
	var wg sync.WaitGroup
	for w := 0; w < streams; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%s-%d", prefix, w)
			for i := 0; i < each; i++ {
				if _, err := s.Append(context.Background(), stream, eventstore.ExpectRevision(uint64(i)), Events("t.m", i, 1)...); err != nil {
					t.Errorf("append %s: %v", stream, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := collect(t, s, start, prefix)
	if len(got) != streams*each {
		t.Fatalf("read all found %d events, want %d", len(got), streams*each)
	}
	v := eventstore.NewVerifier()
	for _, e := range got {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
	if v.Streams() != streams {
		t.Fatalf("%d streams, want %d", v.Streams(), streams)
	}
}

// Rehash recomputes the stream chain of log[i]'s stream from log[i] on, as
// a forger who edited log[i] would: log is in global order; the hashes of
// the stream's later events are rewritten in place.
func Rehash(log []eventstore.Event, i int) {
	var prev eventstore.Hash
	for j := i - 1; j >= 0; j-- {
		if log[j].Stream == log[i].Stream {
			prev = log[j].Hash
			break
		}
	}
	for j := i; j < len(log); j++ {
		if log[j].Stream == log[i].Stream {
			log[j].Hash = eventstore.ChainHash(prev, log[j])
			prev = log[j].Hash
		}
	}
}
