package esdbtest

import "github.com/google/uuid"

type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectRevision
)

// expectation is an append's expected stream revision.
type expectation struct {
	kind expectKind
	rev  uint64
}

// proposed is an event as the client proposes it.
type proposed struct {
	id   uuid.UUID
	typ  string
	json bool
	data []byte
	meta []byte
}

// outcome is what an append did.
type outcome struct {
	wrong   bool   // wrong expected version: nothing written
	current int64  // the stream's last revision, -1 for no stream
	pos     uint64 // position of the last event written or repeated, 0 if none
}

// append checks exp against stream and writes events, or recognises them as
// a repeat of an earlier append, following EventStoreDB's commit check.
func (l *memlog) append(stream string, exp expectation, events []proposed) outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs := l.streams[stream]
	cur := int64(len(recs)) - 1
	wrong := outcome{wrong: true, current: cur}

	switch exp.kind {
	case expectAny, expectExists:
		if exp.kind == expectExists && cur < 0 {
			return wrong
		}
		// Weak idempotency: the ids are looked up wherever they are in the stream.
		var first, last *record
		for i, e := range events {
			r, ok := l.byID[e.id]
			if ok && r.stream == stream && (last == nil || r.rev == last.rev+1) {
				if first == nil {
					first = r
				}
				last = r
				continue
			}
			if i > 0 {
				return wrong // part of the events are written: corrupted idempotency
			}
			return l.commit(stream, events)
		}
		if last == nil {
			return outcome{current: cur} // nothing to write
		}
		return outcome{current: int64(last.rev), pos: last.pos}
	default:
		expected := int64(-1)
		if exp.kind == expectRevision {
			expected = int64(exp.rev)
		}
		switch {
		case expected > cur:
			return wrong
		case expected == cur:
			return l.commit(stream, events)
		}
		// Strong idempotency: the events must be the stream's events right
		// after the expected revision.
		if len(events) == 0 {
			return wrong
		}
		var last *record
		for i, e := range events {
			n := expected + 1 + int64(i)
			if n > cur || recs[n].id != e.id {
				return wrong
			}
			last = recs[n]
		}
		return outcome{current: int64(last.rev), pos: last.pos}
	}
}

// commit writes events to stream; l.mu must be held.
func (l *memlog) commit(stream string, events []proposed) outcome {
	if len(events) == 0 {
		return outcome{current: int64(len(l.streams[stream])) - 1}
	}
	recs := l.write(stream, events)
	last := recs[len(recs)-1]
	return outcome{current: int64(last.rev), pos: last.pos}
}
