package esdbtest

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// record is one event in the log.
type record struct {
	pos     uint64 // log position: commit and prepare position alike
	size    uint64 // bytes the record occupies in the log
	stream  string
	rev     uint64
	id      uuid.UUID
	typ     string
	json    bool
	data    []byte
	meta    []byte
	created int64 // 100 ns ticks since the Unix epoch
}

// epochSize is the size of the non-event epoch record at position 0: the
// first event of a fresh log comes after it, as in a real transaction file.
const epochSize = 120

// memlog is the transaction log and the stream index, in memory.
type memlog struct {
	opts Options

	mu      sync.Mutex
	records []*record // log order, positions strictly increasing
	streams map[string][]*record
	byID    map[uuid.UUID]*record
	next    uint64        // position of the next record
	changed chan struct{} // closed and replaced after every write
}

func newMemlog(opts Options) *memlog {
	return &memlog{
		opts:    opts,
		streams: make(map[string][]*record),
		byID:    make(map[uuid.UUID]*record),
		next:    epochSize,
		changed: make(chan struct{}),
	}
}

// seed writes the system events a fresh node writes when it starts.
func (l *memlog) seed() {
	l.appendRaw("$$$users", "$metadata", []byte(`{"$acl":{"$r":"$admins"}}`), nil)
	l.appendRaw("$users", "$UserCreated", []byte(`"admin"`), nil)
	l.appendRaw("$user-admin", "$user", []byte(`{"loginName":"admin"}`), nil)
	l.appendRaw("$scavenges", "$scavengeIndexInitialized", []byte(`{}`), nil)
}

// write adds records for events to stream; l.mu must be held. It returns the
// written records.
func (l *memlog) write(stream string, events []proposed) []*record {
	now := l.opts.Now().UnixNano() / 100
	out := make([]*record, 0, len(events))
	for _, e := range events {
		r := &record{
			stream: stream, rev: uint64(len(l.streams[stream])),
			id: e.id, typ: e.typ, json: e.json, data: e.data, meta: e.meta, created: now,
		}
		l.place(r)
		out = append(out, r)
	}
	if l.opts.Links && !strings.HasPrefix(stream, "$") {
		for _, r := range out {
			l.link(r)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return out
}

// place assigns r its position and indexes it; l.mu must be held.
func (l *memlog) place(r *record) {
	r.pos = l.next
	r.size = uint64(64 + len(r.stream) + 2*len(r.typ) + len(r.data) + len(r.meta))
	r.size += (8 - r.size%8) % 8
	l.next += r.size
	l.records = append(l.records, r)
	l.streams[r.stream] = append(l.streams[r.stream], r)
	if r.id != uuid.Nil {
		if _, dup := l.byID[r.id]; !dup {
			l.byID[r.id] = r
		}
	}
}

// link writes the "$>" link event the $by_category projection writes for r.
func (l *memlog) link(r *record) {
	category, _, _ := strings.Cut(r.stream, "-")
	stream := "$ce-" + category
	lr := &record{
		stream: stream, rev: uint64(len(l.streams[stream])), id: uuid.New(),
		typ: "$>", data: []byte(strconv.FormatUint(r.rev, 10) + "@" + r.stream), created: r.created,
	}
	l.place(lr)
}

func (l *memlog) appendRaw(stream, typ string, data, meta []byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := l.write(stream, []proposed{{id: uuid.New(), typ: typ, json: true, data: data, meta: meta}})
	return rs[0].pos
}

func (l *memlog) head() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.records) == 0 {
		return 0
	}
	return l.records[len(l.records)-1].pos
}

// validPosition reports whether a read may start at commit position pos: the
// start of a record, the epoch at 0, or at or beyond the end of the log.
// l.mu must be held.
func (l *memlog) validPosition(pos uint64) bool {
	if pos == 0 || pos >= l.next {
		return true
	}
	i := l.search(pos)
	return i < len(l.records) && l.records[i].pos == pos
}

// search returns the index of the first record at or after pos; l.mu must be held.
func (l *memlog) search(pos uint64) int {
	return sort.Search(len(l.records), func(i int) bool { return l.records[i].pos >= pos })
}

// Record is an event of the double's log as its database files hold it,
// for tests that tamper with the log (Server.Tamper). Metadata is the
// user metadata JSON.
type Record struct {
	Position       uint64
	Stream         string
	Revision       uint64
	ID             uuid.UUID
	Type           string
	Data, Metadata []byte
}

// tamper replaces the records with what edit makes of them.
func (l *memlog) tamper(edit func([]Record) []Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in := make([]Record, len(l.records))
	byPos := make(map[uint64]*record, len(l.records))
	for i, r := range l.records {
		in[i] = Record{Position: r.pos, Stream: r.stream, Revision: r.rev, ID: r.id, Type: r.typ,
			Data: slices.Clone(r.data), Metadata: slices.Clone(r.meta)}
		byPos[r.pos] = r
	}
	out := edit(in)
	slices.SortStableFunc(out, func(a, b Record) int { return cmp.Compare(a.Position, b.Position) })
	l.records = make([]*record, 0, len(out))
	l.streams = make(map[string][]*record)
	l.byID = make(map[uuid.UUID]*record)
	for _, t := range out {
		r := &record{pos: t.Position, stream: t.Stream, rev: t.Revision, id: t.ID, typ: t.Type, json: true,
			data: t.Data, meta: t.Metadata}
		if old := byPos[t.Position]; old != nil {
			r.size, r.created, r.json = old.size, old.created, old.json
		} else {
			r.size, r.created = 8, l.opts.Now().UnixNano()/100
		}
		l.records = append(l.records, r)
		l.streams[r.stream] = append(l.streams[r.stream], r)
		if _, dup := l.byID[r.id]; !dup && r.id != uuid.Nil {
			l.byID[r.id] = r
		}
	}
	for _, rs := range l.streams {
		slices.SortStableFunc(rs, func(a, b *record) int { return cmp.Compare(a.rev, b.rev) })
	}
	if n := len(l.records); n > 0 {
		l.next = max(l.next, l.records[n-1].pos+l.records[n-1].size)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}
