package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
)

const eventsUsage = `usage: coinledger events <command>

  export [-from POS] [-to POS] [-o FILE] [-gzip]
                      write the global log as NDJSON (stdout, or FILE; gzip when FILE
                      ends in .gz or with -gzip): a header line, every event with its
                      stream, revision, position, id, type, data (as stored), metadata,
                      time and hash, and an end line
  import [-check] FILE
                      import an export (FILE, or - for stdin; .gz or gzip data is
                      decompressed) into the event store the configuration names, which
                      must be empty, verifying every stream's hash chain as it goes;
                      -check only verifies the file

Both take -config FILE. They open the event store COINLEDGER_EVENT_STORE names; the
embedded store is locked by a running server: stop it first.
`

// eventsCmd runs the events subcommands.
func eventsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("events: no command given\n" + eventsUsage)
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
	return usageError(fmt.Sprintf("events: unknown command %q\n%s", args[0], eventsUsage))
}

// openStoreForEvents opens the event store of the configuration in
// configPath ("": none) and names its kind, sqlite or esdb.
func openStoreForEvents(ctx context.Context, name, configPath string) (eventstore.Store, string, func() error, error) {
	cfg, err := loadConfigFile(name, configPath)
	if err != nil {
		return nil, "", nil, err
	}
	url := cfg.EventStore.Reveal()
	kind := "esdb"
	if strings.HasPrefix(url, "sqlite:") {
		kind = "sqlite"
	}
	store, closeStore, err := openEventStore(ctx, url)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", name, err)
	}
	return store, kind, closeStore, nil
}

// eventsExport writes the global log as NDJSON.
func eventsExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events export", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	from := fs.Uint64("from", 0, "first position to export (default: the first)")
	to := fs.Uint64("to", 0, "last position to export (default: the head)")
	out := fs.String("o", "", "output file (default: standard output)")
	gz := fs.Bool("gzip", false, "compress with gzip (implied by an output file ending in .gz)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usageError("events export: unexpected arguments\n" + eventsUsage)
	}
	store, kind, closeStore, err := openStoreForEvents(ctx, "events export", *config)
	if err != nil {
		return err
	}
	defer closeStore()

	var w io.Writer = os.Stdout
	var file *os.File
	if *out != "" && *out != "-" {
		if file, err = os.Create(*out); err != nil {
			return fmt.Errorf("events export: %w", err)
		}
		defer file.Close()
		w = file
		*gz = *gz || strings.HasSuffix(*out, ".gz")
	}
	var zw *gzip.Writer
	if *gz {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		w = zw
	}
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("events export: %w", err)
	}
	first, last := max(*from, 1), head
	if *to > 0 {
		last = min(last, *to)
	}
	var p dump.Progress
	stop := startProgress("exported", &p, func() float64 {
		if last <= first {
			return 1
		}
		pos := p.Position.Load()
		if pos < first {
			return 0
		}
		return float64(pos-first+1) / float64(last-first+1)
	})
	start := time.Now()
	end, err := dump.Export(ctx, store, w, dump.ExportOptions{From: *from, To: *to, Source: kind, Progress: &p})
	stop()
	if err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("events export: %w", err)
		}
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return fmt.Errorf("events export: %w", err)
		}
		if err := file.Close(); err != nil {
			return fmt.Errorf("events export: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "exported %d events up to position %d in %s (%s)\n",
		end.Events, end.LastPosition, time.Since(start).Round(time.Millisecond), rate(end.Events, time.Since(start)))
	return nil
}

// eventsImport imports an export into an empty event store.
func eventsImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events import", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	check := fs.Bool("check", false, "only read and verify the file; write nothing")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() != 1 {
		return usageError("events import: give one FILE (or - for standard input)\n" + eventsUsage)
	}
	name := fs.Arg(0)
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
		var closeStore func() error
		var err error
		if store, _, closeStore, err = openStoreForEvents(ctx, "events import", *config); err != nil {
			return err
		}
		defer closeStore()
	}
	var p dump.Progress
	stop := startProgress("imported", &p, func() float64 {
		if size <= 0 {
			return 0
		}
		return float64(counted.n.Load()) / float64(size)
	})
	start := time.Now()
	_, end, err := dump.Import(ctx, store, in, dump.ImportOptions{Progress: &p, CheckOnly: *check})
	stop()
	if err != nil {
		return err
	}
	verb := "imported"
	if *check {
		verb = "verified"
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

// startProgress reports p on standard error until the returned stop is
// called: on a terminal one line refreshed in place with the rate and, when
// fraction (the share done, 0 when unknown) tells, the time left; else a
// plain line every five seconds.
func startProgress(verb string, p *dump.Progress, fraction func() float64) (stop func()) {
	tty := false
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	every := 5 * time.Second
	if tty {
		every = 250 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		printed := false
		for {
			select {
			case <-done:
				if printed && tty {
					fmt.Fprint(os.Stderr, "\r\033[K")
				}
				return
			case <-t.C:
			}
			elapsed := time.Since(start)
			n := p.Events.Load()
			s := fmt.Sprintf("%s %d events (position %d), %s", verb, n, p.Position.Load(), rate(n, elapsed))
			if f := fraction(); f > 0 && f < 1 {
				eta := time.Duration(float64(elapsed) * (1 - f) / f)
				s += fmt.Sprintf(", %.0f%%, %s left", 100*f, eta.Round(time.Second))
			}
			if tty {
				fmt.Fprintf(os.Stderr, "\r\033[K%s", s)
			} else {
				fmt.Fprintln(os.Stderr, s)
			}
			printed = true
		}
	}()
	return func() { close(done); wg.Wait() }
}
