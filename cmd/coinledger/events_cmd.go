package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
)

const eventsUsage = `usage: coinledger events <command>

  export [-from POS] [-to POS] [-o FILE] [-gzip] [-url URL] [-token TOKEN]
                      write the global log as NDJSON (stdout, or FILE; gzip when FILE
                      ends in .gz or with -gzip): a header line, every event with its
                      stream, revision, position, id, type, data (as stored), metadata,
                      time and hash, and an end line
  import [-check] FILE
                      import an export (FILE, or - for stdin; .gz or gzip data is
                      decompressed) into the event store the configuration names, which
                      must be empty, verifying every stream's hash chain as it goes;
                      -check only verifies the file

Both take -config FILE and open the event store COINLEDGER_EVENT_STORE names. While a
running server holds the embedded store, export goes through the server's admin API
(GET /api/v1/events/export, the same format) and import is refused: its target must
be empty and served by nothing.
` + remoteUsage

// eventsCmd runs the events subcommands.
func eventsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("events: no command given\n\n" + eventsUsage)
	}
	switch args[0] {
	case "export":
		return eventsExport(ctx, args[1:])
	case "import":
		return eventsImport(ctx, args[1:])
	case "help", "-h", "--help":
		os.Stdout.WriteString(eventsUsage)
		return nil
	}
	return usageError(fmt.Sprintf("events: unknown command %q\n\n%s", args[0], eventsUsage))
}

// eventsExport writes the global log as NDJSON: from the store, or
// through the running server's admin API when the server holds the
// embedded store's lock.
func eventsExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events export", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	from := fs.Uint64("from", 0, "first position to export (default: the first)")
	to := fs.Uint64("to", 0, "last position to export (default: the head)")
	out := fs.String("o", "", "output file (default: standard output)")
	gz := fs.Bool("gzip", false, "compress with gzip (implied by an output file ending in .gz)")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, eventsUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("events export", *config)
	if err != nil {
		return err
	}
	url := cfg.EventStore.Reveal()
	var r *remote
	store, closeStore, err := openEventStore(ctx, url)
	switch {
	case errors.Is(err, errStoreLocked):
		r = usingServer("events export", rf.client(cfg.Listen, cfg.AdminPassword.Reveal()))
	case err != nil:
		return fmt.Errorf("events export: %w", err)
	default:
		defer closeStore()
	}
	w, finish, err := exportOutput(*out, *gz)
	if err != nil {
		return fmt.Errorf("events export: %w", err)
	}
	var p dump.Progress
	var first, last atomic.Uint64 // the range asked for, once known
	stop := startProgress("exported", func() progressSample {
		pos := p.Position.Load()
		s := progressSample{Events: p.Events.Load(), Position: pos}
		if f, l := max(first.Load(), 1), last.Load(); l > f && pos >= f {
			s.Fraction = float64(pos-f+1) / float64(l-f+1)
		}
		return s
	})
	start := time.Now()
	var end dump.End
	if r != nil {
		end, err = exportRemote(ctx, r, w, *from, *to, &p, func(h dump.Header) { first.Store(h.From); last.Store(h.To) })
	} else {
		first.Store(*from)
		var head uint64
		if head, err = store.Head(ctx); err == nil {
			last.Store(head)
			if *to > 0 {
				last.Store(min(head, *to))
			}
			end, err = dump.Export(ctx, store, w, dump.ExportOptions{From: *from, To: *to, Source: storeKind(url), Progress: &p})
		}
	}
	stop()
	if ferr := finish(); err == nil { // closes the file on failure too
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("events export: %w", err)
	}
	fmt.Fprintf(os.Stderr, "exported %d events up to position %d in %s (%s)\n",
		end.Events, end.LastPosition, time.Since(start).Round(time.Millisecond), rate(end.Events, time.Since(start)))
	return nil
}

// exportOutput opens where an export goes: standard output, or the file
// out (compressed when gz or when its name ends in .gz). finish flushes,
// syncs and closes it.
func exportOutput(out string, gz bool) (w io.Writer, finish func() error, err error) {
	w, finish = os.Stdout, func() error { return nil }
	if out != "" && out != "-" {
		file, err := os.Create(out)
		if err != nil {
			return nil, nil, err
		}
		w = file
		finish = func() error {
			if err := file.Sync(); err != nil {
				file.Close()
				return err
			}
			return file.Close()
		}
		gz = gz || strings.HasSuffix(out, ".gz")
	}
	if gz {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		closeFile := finish
		w, finish = zw, func() error {
			if err := zw.Close(); err != nil {
				closeFile()
				return err
			}
			return closeFile()
		}
	}
	return w, finish, nil
}

// exportRemote copies the server's export (GET /api/v1/events/export, the
// format dump.Export writes) to w, counting its events into p and handing
// its header to header, and returns its end line: an answer without one
// (the server failed midway, the connection broke) is an error.
func exportRemote(ctx context.Context, r *remote, w io.Writer, from, to uint64, p *dump.Progress, header func(dump.Header)) (dump.End, error) {
	var end dump.End
	resp, err := r.stream(ctx, fmt.Sprintf("/events/export?from=%d&to=%d", from, to))
	if err != nil {
		return end, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	bw := bufio.NewWriterSize(w, 1<<20)
	gotEnd := false
	for n := 0; sc.Scan(); n++ {
		line := sc.Bytes()
		switch {
		case n == 0:
			var h dump.Header
			if err := json.Unmarshal(line, &h); err != nil || h.Format != dump.Format {
				return end, fmt.Errorf("the server's export does not start with a %s header", dump.Format)
			}
			header(h)
		case bytes.HasPrefix(line, []byte(`{"end":`)):
			var e struct {
				End dump.End `json:"end"`
			}
			if err := json.Unmarshal(line, &e); err != nil {
				return end, fmt.Errorf("the server's export: end line: %w", err)
			}
			end, gotEnd = e.End, true
		default:
			p.Events.Add(1)
			p.Position.Store(linePosition(line))
		}
		bw.Write(line)
		if err := bw.WriteByte('\n'); err != nil {
			return end, fmt.Errorf("write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return end, fmt.Errorf("read the server's export after %d events: %w", p.Events.Load(), err)
	}
	if !gotEnd {
		return end, fmt.Errorf("the server's export ended without its end line after %d events (the server failed: see its log)", p.Events.Load())
	}
	if err := bw.Flush(); err != nil {
		return end, fmt.Errorf("write: %w", err)
	}
	return end, nil
}

// linePosition reads the position of an event line of an export (0 when
// it has none). The first `,"position":` is the field: inside the stream
// name before it, quotes are escaped.
func linePosition(line []byte) uint64 {
	const key = `,"position":`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range line[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// eventsImport imports an export into an empty event store.
func eventsImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events import", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	check := fs.Bool("check", false, "only read and verify the file; write nothing")
	pos, err := parseFlags(fs, eventsUsage, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	var raw io.Reader = os.Stdin
	var size int64
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("events import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		raw = f
	}
	counted := &countingReader{r: raw}
	br := bufio.NewReaderSize(counted, 1<<20)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("events import: %w", err)
		}
		defer zr.Close()
		in = zr
	}
	var store eventstore.Store
	if !*check {
		cfg, err := loadConfigFile("events import", *config)
		if err != nil {
			return err
		}
		st, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
		if errors.Is(err, errStoreLocked) {
			return fmt.Errorf("events import: %w (an import goes only into an empty store that nothing serves: "+
				"stop the server, or import into a new store, COINLEDGER_EVENT_STORE, and serve that)", err)
		}
		if err != nil {
			return fmt.Errorf("events import: %w", err)
		}
		defer closeStore()
		store = st
	}
	var p dump.Progress
	verb := "imported"
	if *check {
		verb = "verified"
	}
	stop := startProgress(verb, func() progressSample {
		s := progressSample{Events: p.Events.Load(), Position: p.Position.Load()}
		if size > 0 {
			s.Fraction = float64(counted.n.Load()) / float64(size)
		}
		return s
	})
	start := time.Now()
	_, end, err := dump.Import(ctx, store, in, dump.ImportOptions{Progress: &p, CheckOnly: *check})
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s %d events up to source position %d, every hash chain verified, in %s (%s)\n",
		verb, end.Events, end.LastPosition, time.Since(start).Round(time.Millisecond), rate(end.Events, time.Since(start)))
	return nil
}

// countingReader counts the bytes read, for the progress of an import.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func rate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "- events/s"
	}
	return fmt.Sprintf("%.0f events/s", float64(n)/d.Seconds())
}
