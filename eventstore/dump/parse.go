package dump

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

// lineParser decodes event lines in the shape AppendEvent writes them
// (fields in its order, strings without escapes, data as raw JSON) without
// reflection: encoding/json decoding a line was most of an import's time.
// A line of any other shape (another writer's field order, escapes, a
// data_text) is left to encoding/json, which reads any valid line.
//
// It copies what it keeps out of the line: data bytes into slabs shared by
// many events (never written again once handed out), names and actors
// through a small intern table (a log repeats them on every event).
type lineParser struct {
	slab   []byte
	intern map[string]string
}

const slabSize = 1 << 20

func newLineParser() *lineParser { return &lineParser{intern: make(map[string]string)} }

// parse decodes b into e and reports whether b had the expected shape;
// when it did not, e is garbage and the caller decodes b otherwise.
func (p *lineParser) parse(b []byte, e *eventstore.Event) bool {
	r := reader{b: b}
	var ok bool
	if !r.lit(`{"stream":`) {
		return false
	}
	if e.Stream, ok = r.str(p, true); !ok {
		return false
	}
	if !r.lit(`,"revision":`) {
		return false
	}
	if e.Revision, ok = r.uint(); !ok || !r.lit(`,"position":`) {
		return false
	}
	if e.Position, ok = r.uint(); !ok || !r.lit(`,"id":"`) || len(r.b)-r.i < 36 {
		return false
	}
	id, err := uuid.ParseBytes(r.b[r.i : r.i+36])
	if err != nil {
		return false
	}
	e.ID, r.i = id, r.i+36
	if !r.lit(`","type":`) {
		return false
	}
	if e.Type, ok = r.str(p, true); !ok || !r.lit(`,"data":`) {
		return false
	}
	end := skipValue(r.b, r.i)
	if end < 0 || !json.Valid(r.b[r.i:end]) {
		return false
	}
	e.Data = p.keep(r.b[r.i:end])
	r.i = end
	if !r.lit(`,"metadata":{`) {
		return false
	}
	m := &e.Metadata
	*m = eventstore.Metadata{}
	first := true
	for _, f := range [...]struct {
		key    string
		dst    *string
		intern bool
	}{
		{`"correlation_id":`, &m.CorrelationID, false}, {`"causation_id":`, &m.CausationID, false},
		{`"actor":`, &m.Actor, true}, {`"schema_version":`, nil, false}, {`"idempotency_key":`, &m.IdempotencyKey, false},
	} {
		at := r.i
		if !first && !r.lit(",") {
			continue
		}
		if !r.lit(f.key) {
			r.i = at
			continue
		}
		first = false
		if f.dst == nil {
			n, ok := r.int()
			if !ok {
				return false
			}
			m.SchemaVersion = n
			continue
		}
		if *f.dst, ok = r.str(p, f.intern); !ok {
			return false
		}
	}
	if !r.lit(`},"created":"`) {
		return false
	}
	q := bytes.IndexByte(r.b[r.i:], '"')
	if q < 0 {
		return false
	}
	var created time.Time // as encoding/json reads it: strict RFC 3339
	if err := created.UnmarshalText(r.b[r.i : r.i+q]); err != nil {
		return false
	}
	e.Created, r.i = created.UTC(), r.i+q
	if !r.lit(`","hash":"`) || len(r.b)-r.i != 2*len(e.Hash)+2 {
		return false
	}
	if _, err := hex.Decode(e.Hash[:], r.b[r.i:r.i+2*len(e.Hash)]); err != nil {
		return false
	}
	r.i += 2 * len(e.Hash)
	return r.lit(`"}`) && r.i == len(r.b)
}

// keep copies data into the current slab.
func (p *lineParser) keep(data []byte) json.RawMessage {
	if len(data) > slabSize/4 {
		return bytes.Clone(data)
	}
	if cap(p.slab)-len(p.slab) < len(data) {
		p.slab = make([]byte, 0, slabSize)
	}
	start := len(p.slab)
	p.slab = append(p.slab, data...)
	return p.slab[start:len(p.slab):len(p.slab)]
}

// reader is a cursor over a line.
type reader struct {
	b []byte
	i int
}

func (r *reader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// str reads a JSON string without escapes or control characters, in valid
// UTF-8 (encoding/json would replace invalid bytes).
func (r *reader) str(p *lineParser, intern bool) (string, bool) {
	if !r.lit(`"`) {
		return "", false
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		c := r.b[r.i]
		if c == '"' {
			break
		}
		if c < 0x20 || c == '\\' {
			return "", false
		}
	}
	if r.i == len(r.b) {
		return "", false
	}
	s := r.b[start:r.i]
	r.i++
	if !utf8.Valid(s) {
		return "", false
	}
	if !intern {
		return string(s), true
	}
	if v, ok := p.intern[string(s)]; ok {
		return v, true
	}
	v := string(s)
	if len(p.intern) < 4096 {
		p.intern[v] = v
	}
	return v, true
}

func (r *reader) uint() (uint64, bool) {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	n, err := strconv.ParseUint(string(r.b[start:r.i]), 10, 64)
	return n, err == nil && (r.i-start == 1 || r.b[start] != '0')
}

func (r *reader) int() (int, bool) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	digits := r.b[start:r.i]
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, 0)
	return int(n), err == nil && (len(digits) == 1 || digits[0] != '0')
}

// skipValue returns the end of the JSON value starting at b[i] (an object,
// array, string or bare literal), or -1 if it does not end within b. It
// only finds the end; the caller checks the value with json.Valid.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return -1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}
