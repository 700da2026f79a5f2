// Package dump writes an event store's global log as NDJSON and imports
// such a file into an empty store, verifying every stream's hash chain on
// the way. It is how the embedded SQLite store moves to EventStoreDB.
//
// The format is one JSON object per line:
//
//	{"format":"coinledger-events","version":1,"source":"sqlite","head":9,"from":1,"to":9,"exported_at":"…"}
//	{"stream":"wallet-…","revision":0,"position":1,"id":"…","type":"WalletOpened","data":{…},"metadata":{…},"created":"…","hash":"…"}
//	…
//	{"end":{"events":9,"last_position":9}}
//
// Data is written as stored, byte for byte: the hash chain covers it, and
// sealed credential boxes stay sealed. Data that holds a line break (never
// written by this service, whose stores compact JSON) goes into "data_text",
// a JSON string, instead. The end line lets an importer tell a complete file
// from a truncated one.
package dump

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

// Format and Version identify the file format in the header line.
const (
	Format  = "coinledger-events"
	Version = 1
)

// Header is the first line of an export.
type Header struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Source     string    `json:"source"` // the kind of the source store: sqlite, esdb
	Head       uint64    `json:"head"`   // the source's head position when the export began
	From       uint64    `json:"from"`   // the first position asked for (1: from the start)
	To         uint64    `json:"to"`     // the last position asked for (the head when not limited)
	ExportedAt time.Time `json:"exported_at"`
}

// End is the last line's content.
type End struct {
	Events       uint64 `json:"events"`
	LastPosition uint64 `json:"last_position"`
}

// Progress counts what an export or import has done; another goroutine may
// read it while the work goes on.
type Progress struct {
	Events   atomic.Uint64 // events written or imported
	Position atomic.Uint64 // the source position of the last of them
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	From, To uint64 // positions from From to To inclusive; 0: from the start, to the head
	Source   string // the source store's kind, for the header
	Progress *Progress
	Now      func() time.Time // default time.Now
}

const pageSize = 4096

// errDone ends the subscription of an export at its last position.
var errDone = errors.New("export done")

// Export writes the header, the events of store with positions in the
// range opts selects, in global order, and the end line to w. It buffers w
// itself.
func Export(ctx context.Context, store eventstore.Store, w io.Writer, opts ExportOptions) (End, error) {
	var end End
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Progress == nil {
		opts.Progress = new(Progress)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return end, fmt.Errorf("export: %w", err)
	}
	to := head
	if opts.To > 0 {
		to = min(to, opts.To)
	}
	h := Header{Format: Format, Version: Version, Source: opts.Source, Head: head,
		From: max(opts.From, 1), To: to, ExportedAt: opts.Now().UTC().Truncate(time.Microsecond)}
	bw := bufio.NewWriterSize(w, 1<<20)
	hb, err := json.Marshal(h)
	if err != nil {
		return end, fmt.Errorf("export: header: %w", err)
	}
	bw.Write(append(hb, '\n'))

	// Subscribe reads the stored events the fastest way each store has
	// (SQLite reads the next pages concurrently); the export ends at to.
	line := make([]byte, 0, 4096)
	var werr error
	if to >= h.From {
		err = store.Subscribe(ctx, h.From-1, func(ctx context.Context, events []eventstore.Event) error {
			for _, e := range events {
				if e.Position > to {
					return errDone
				}
				line = AppendEvent(line[:0], e)
				if _, werr = bw.Write(line); werr != nil {
					return werr
				}
				end.Events++
				end.LastPosition = e.Position
			}
			opts.Progress.Events.Store(end.Events)
			opts.Progress.Position.Store(end.LastPosition)
			if end.LastPosition >= to {
				return errDone
			}
			return nil
		})
		switch {
		case werr != nil:
			return end, fmt.Errorf("export: write: %w", werr)
		case !errors.Is(err, errDone):
			return end, fmt.Errorf("export: read after %d: %w", end.LastPosition, err)
		}
	}
	eb, _ := json.Marshal(struct {
		End End `json:"end"`
	}{end})
	bw.Write(append(eb, '\n'))
	if err := bw.Flush(); err != nil {
		return end, fmt.Errorf("export: write: %w", err)
	}
	return end, nil
}

// createdLayout writes creation times in UTC with exactly microseconds.
const createdLayout = "2006-01-02T15:04:05.000000Z07:00"

// AppendEvent appends e's line (with its newline) to b. It is written by
// hand, not with encoding/json, which would compact data (changing its
// bytes) and is several times slower.
func AppendEvent(b []byte, e eventstore.Event) []byte {
	b = append(b, `{"stream":`...)
	b = appendString(b, e.Stream)
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, e.Revision, 10)
	b = append(b, `,"position":`...)
	b = strconv.AppendUint(b, e.Position, 10)
	b = append(b, `,"id":"`...)
	var id [36]byte
	encodeUUID(id[:], e.ID)
	b = append(b, id[:]...)
	b = append(b, `","type":`...)
	b = appendString(b, e.Type)
	if rawSafe(e.Data) {
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
	} else {
		b = append(b, `,"data_text":`...)
		b = appendString(b, string(e.Data))
	}
	b = append(b, `,"metadata":{`...)
	m := e.Metadata
	sep := ""
	for _, f := range [...]struct{ k, v string }{
		{"correlation_id", m.CorrelationID}, {"causation_id", m.CausationID}, {"actor", m.Actor},
	} {
		if f.v != "" {
			b = append(b, sep+`"`+f.k+`":`...)
			b = appendString(b, f.v)
			sep = ","
		}
	}
	if m.SchemaVersion != 0 {
		b = append(b, sep+`"schema_version":`...)
		b = strconv.AppendInt(b, int64(m.SchemaVersion), 10)
		sep = ","
	}
	if m.IdempotencyKey != "" {
		b = append(b, sep+`"idempotency_key":`...)
		b = appendString(b, m.IdempotencyKey)
	}
	b = append(b, `},"created":"`...)
	b = e.Created.UTC().AppendFormat(b, createdLayout)
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, e.Hash[:])
	return append(b, "\"}\n"...)
}

// rawSafe reports whether data can go into a line as it is: JSON without
// a line break (a line break can only be whitespace in JSON). Stores take
// only JSON data, so a full check is left to the importer, which reads the
// line as JSON; an object, which all of this service's events are, is
// recognised at once.
func rawSafe(data []byte) bool {
	if bytes.ContainsAny(data, "\n\r") || len(data) == 0 {
		return false
	}
	return data[0] == '{' && data[len(data)-1] == '}' || json.Valid(data)
}

func encodeUUID(dst []byte, u uuid.UUID) {
	hex.Encode(dst, u[:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], u[10:])
}

// appendString appends s as a JSON string, as encoding/json would (without
// its HTML escaping). An invalid UTF-8 byte becomes U+FFFD, as there: names
// and metadata come from Go strings the service built, which are valid.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// ImportOptions tune Import.
type ImportOptions struct {
	// BatchSize is how many events one Import call of the store gets (default 4096).
	BatchSize int
	Progress  *Progress
	// CheckOnly reads and verifies the file without writing (store may be nil).
	CheckOnly bool
}

// ErrNotEmpty: the target of an import already holds events.
var ErrNotEmpty = errors.New("the target event store is not empty")

// line is one line of an export, event or end.
type line struct {
	Stream   string              `json:"stream"`
	Revision uint64              `json:"revision"`
	Position uint64              `json:"position"`
	ID       uuid.UUID           `json:"id"`
	Type     string              `json:"type"`
	Data     json.RawMessage     `json:"data"`
	DataText *string             `json:"data_text"`
	Metadata eventstore.Metadata `json:"metadata"`
	Created  time.Time           `json:"created"`
	Hash     eventstore.Hash     `json:"hash"`
	End      *End                `json:"end"`
}

// Import reads an export from r and appends its events to store, which
// must be empty and implement eventstore.Importer, in their order. It
// verifies every stream's hash chain as it reads and stops at the first
// broken link, a truncated file or a failed append, with an error naming
// the event; events of the batches before stay written (an import into
// SQLite is all-or-nothing per batch only): delete the target and start
// again. Use CheckOnly to verify a file first.
func Import(ctx context.Context, store eventstore.Store, r io.Reader, opts ImportOptions) (Header, End, error) {
	var h Header
	var end End
	if opts.BatchSize <= 0 {
		opts.BatchSize = pageSize
	}
	if opts.Progress == nil {
		opts.Progress = new(Progress)
	}
	var imp eventstore.Importer
	if !opts.CheckOnly {
		var ok bool
		if imp, ok = store.(eventstore.Importer); !ok {
			return h, end, fmt.Errorf("import: the target event store (%T) cannot import", store)
		}
		head, err := store.Head(ctx)
		if err != nil {
			return h, end, fmt.Errorf("import: %w", err)
		}
		if head != 0 {
			return h, end, fmt.Errorf("import: %w (head at position %d): import only into a new store", ErrNotEmpty, head)
		}
	}
	sc, h, err := readHeader(r)
	if err != nil {
		return h, end, err
	}

	// This goroutine decodes and verifies; a second one appends the
	// batches, so that decoding overlaps with the store's commits.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []eventstore.Event, 2)
	appendErr := make(chan error, 1)
	go func() {
		defer close(appendErr)
		for batch := range batches {
			if _, err := imp.Import(ctx, batch); err != nil {
				appendErr <- fmt.Errorf("import: append %d events from %s (source position %d): %w",
					len(batch), batch[0], batch[0].Position, err)
				cancel()
				for range batches {
				}
				return
			}
			last := batch[len(batch)-1]
			opts.Progress.Events.Add(uint64(len(batch)))
			opts.Progress.Position.Store(last.Position)
		}
	}()
	err = decode(ctx, sc, opts, true, &end, func(batch []eventstore.Event) error {
		if opts.CheckOnly {
			last := batch[len(batch)-1]
			opts.Progress.Events.Add(uint64(len(batch)))
			opts.Progress.Position.Store(last.Position)
			return nil
		}
		select {
		case batches <- batch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		// A broken file: stop appending what was queued before it.
		cancel()
	}
	close(batches)
	aerr := <-appendErr
	if err != nil && !errors.Is(err, context.Canceled) {
		return h, end, err
	}
	if aerr != nil {
		return h, end, aerr
	}
	return h, end, err
}

// readHeader reads the header line of an export.
func readHeader(r io.Reader) (*bufio.Scanner, Header, error) {
	var h Header
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return sc, h, fmt.Errorf("import: read header: %w", err)
		}
		return sc, h, fmt.Errorf("import: empty input: no header line")
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != Format {
		return sc, h, fmt.Errorf("import: the first line is not a %s header", Format)
	}
	if h.Version != Version {
		return sc, h, fmt.Errorf("import: format version %d, this build reads %d", h.Version, Version)
	}
	return sc, h, nil
}

// Read reads an export from r and hands its events to fn in batches, in
// the file's order, as they are: unlike Import it checks neither hash
// chains nor the order of positions, which is for the reader to judge
// (audit verify reports every broken link, not the first). A file that
// does not parse, or whose end line is missing or does not count its
// events, is an error. fn may keep the batches.
func Read(ctx context.Context, r io.Reader, fn func([]eventstore.Event) error) (Header, End, error) {
	var end End
	sc, h, err := readHeader(r)
	if err != nil {
		return h, end, err
	}
	err = decode(ctx, sc, ImportOptions{BatchSize: pageSize}, false, &end, fn)
	return h, end, err
}

// decode reads the events after the header, verifies their chains and the
// order of positions when check is set, and hands them on in batches; it
// checks the end line.
func decode(ctx context.Context, sc *bufio.Scanner, opts ImportOptions, check bool, end *End, emit func([]eventstore.Event) error) error {
	v := eventstore.NewVerifier()
	p := newLineParser()
	batch := make([]eventstore.Event, 0, opts.BatchSize)
	var n, lastPos uint64
	var got *End
	lineNo := 1
	for sc.Scan() {
		lineNo++
		if got != nil {
			return fmt.Errorf("import: line %d: data after the end line", lineNo)
		}
		var e eventstore.Event
		if !p.parse(sc.Bytes(), &e) {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return fmt.Errorf("import: line %d (after position %d): %w", lineNo, lastPos, err)
			}
			if l.End != nil {
				got = l.End
				continue
			}
			e = eventstore.Event{ID: l.ID, Stream: l.Stream, Revision: l.Revision, Position: l.Position,
				Type: l.Type, Data: l.Data, Metadata: l.Metadata, Created: l.Created.UTC(), Hash: l.Hash}
			if l.DataText != nil {
				e.Data = json.RawMessage(*l.DataText)
			}
		}
		if check && e.Position <= lastPos {
			return fmt.Errorf("import: line %d: position %d does not follow %d", lineNo, e.Position, lastPos)
		}
		if check {
			if err := v.Verify(e); err != nil {
				return fmt.Errorf("import: event at source position %d (line %d): %w", e.Position, lineNo, err)
			}
		}
		lastPos = e.Position
		n++
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			if err := emit(batch); err != nil {
				return err
			}
			batch = make([]eventstore.Event, 0, opts.BatchSize)
		}
		if n%pageSize == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("import: read line %d: %w", lineNo+1, err)
	}
	if len(batch) > 0 {
		if err := emit(batch); err != nil {
			return err
		}
	}
	*end = End{Events: n, LastPosition: lastPos}
	if got == nil {
		return fmt.Errorf("import: the input ends without its end line after %d events (truncated?)", n)
	}
	if *got != *end {
		return fmt.Errorf("import: the end line counts %d events up to position %d, the input has %d up to %d",
			got.Events, got.LastPosition, n, lastPos)
	}
	return nil
}
