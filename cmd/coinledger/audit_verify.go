package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync/atomic"

	appaudit "github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/wallet"
)

const auditUsage = `usage: coinledger audit verify [-file FILE] [-key FILE]... [-checkpoints FILE]
                             [-json] [-config FILE] [-url URL] [-token TOKEN]

Reads the whole log in global order and checks, reporting each finding with a stable
code and the first failing position, stream and revision:
  every stream's hash chain and revisions     chain_broken, revision_gap, position_order
  every checkpoint (in the log, and those of  checkpoint_unknown_key, checkpoint_bad_signature,
  -checkpoints): its signature with the keys  checkpoint_invalid, checkpoint_unmatched,
  of -key, and that the log matches what it   global_chain_mismatch, stream_heads_mismatch,
  states when it reaches its event count      liabilities_mismatch, checkpoint_unreached
  double entry in every wallet after every    unbalanced_event, negative_balance,
  event; holds and pending deposits           ledger_invariant, undecodable_event
  the wallet and custody read models (beside read_model_drift
  the store, or a local server's) against
  what the log folds to
  per configured coin, deposits − withdrawals  chain_shortfall (a surplus is reported,
  − fees against the node wallet's balance     not a finding); -chains=false skips it

Sources: -file reads an export (events export; offline). Otherwise the configured store;
while a running server holds it (or with -url), the server's API (GET /api/v1/events,
for auditors; events shown redacted are linked, not rehashed).

-key FILE holds the signing keys' public halves (audit public-key, GET /api/v1/audit/public-key,
or one key in hex); repeatable. Without one, offline the data directory's key file is used
(with its salt secret: liability roots are checked too), through a server the keys it serves;
with neither, signatures are not checked. -checkpoints FILE holds
checkpoints received out of band (a JSON array, one object a line, or {"checkpoints":[…]}).

The exit status is 1 when anything is found.
` + remoteUsage

// errFindings: audit verify found something wrong (the report says what).
var errFindings = errors.New("audit verify: the log does not verify")

// auditVerify verifies a log; see auditUsage.
func auditVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	file := fs.String("file", "", "verify this export file (events export), offline")
	var keyFiles multiFlag
	fs.Var(&keyFiles, "key", "file of public keys that sign checkpoints (repeatable)")
	cpFile := fs.String("checkpoints", "", "file of checkpoints received out of band")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	maxFindings := fs.Int("max-findings", appaudit.DefaultMaxPerCode, "findings shown per code")
	chains := fs.Bool("chains", true, "reconcile each configured coin with its node's wallet (not with -file)")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, auditUsage, args, 0); err != nil {
		return err
	}
	opts := appaudit.Options{MaxPerCode: *maxFindings, Keys: map[string]ed25519.PublicKey{}}
	for _, name := range keyFiles {
		if err := readKeys(name, opts.Keys); err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
	}
	if *cpFile != "" {
		cps, err := readCheckpoints(*cpFile)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		opts.Checkpoints = cps
	}
	var src auditSource
	var coins []CoinConfig
	var cfg *Config
	if *file == "" {
		var err error
		if cfg, err = loadConfigFile("audit verify", *config); err != nil {
			return err
		}
		if *chains {
			coins = cfg.coins()
		}
	}
	switch {
	case *file != "":
		src = fileSource(*file)
	case *rf.url != "":
		src = &remoteSource{r: rf.client(cfg.Listen, cfg.AdminPassword.Reveal())}
	default:
		store, db, closeStores, err := openStores(ctx, cfg)
		switch {
		case errors.Is(err, errStoreLocked):
			rs := &remoteSource{r: usingServer("audit verify", rf.client(cfg.Listen, cfg.AdminPassword.Reveal()))}
			// The server's read models, if this machine reaches them.
			if db, closeDB, err := openReadModels(ctx, cfg.ReadModels.Reveal()); err == nil {
				defer closeDB()
				rs.db = db
			} else {
				fmt.Fprintf(os.Stderr, "audit verify: the read models (%v) are not compared\n", err)
			}
			src = rs
		case err != nil:
			return err
		default:
			defer closeStores()
			src = &storeSource{store: store, db: db}
		}
	}
	if len(keyFiles) == 0 {
		if err := defaultKeys(ctx, cfg, src, &opts); err != nil {
			return fmt.Errorf("audit verify: keys: %w", err)
		}
	}
	report, err := verifyLog(ctx, src, opts, func(report *appaudit.Report, t *appaudit.Tally) error {
		return reconcileChains(ctx, coins, report, t)
	})
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(report, "", "  ")
		os.Stdout.Write(append(b, '\n'))
	} else {
		printReport(os.Stdout, report)
	}
	if !report.OK() {
		return errFindings
	}
	return nil
}

// auditSource is where audit verify reads a log.
type auditSource interface {
	// prepare returns the checkpoints the log holds up to the position
	// the pass ends at, and the probes of the read models (if any).
	prepare(ctx context.Context, opts *appaudit.Options) error
	// read hands the log to add in global order, in batches, up to that
	// position; redacted marks events shown with their data redacted.
	// add keeps the batches.
	read(ctx context.Context, add func(events []eventstore.Event, redacted bool), p *auditProgress) error
}

// auditProgress is how far a pass is; the progress line reads it while
// the pass goes on.
type auditProgress struct {
	events, position atomic.Uint64
	head             atomic.Uint64                  // the position the pass ends at (0: not known)
	file             atomic.Pointer[countingReader] // the file read (nil: not a file)
	size             atomic.Int64                   // of the file
}

// sample is the progress line's view of p.
func (p *auditProgress) sample() progressSample {
	s := progressSample{Events: p.events.Load(), Position: p.position.Load()}
	if f, size := p.file.Load(), p.size.Load(); f != nil && size > 0 {
		s.Fraction = float64(f.n.Load()) / float64(size)
	} else if head := p.head.Load(); head > 0 {
		s.Fraction = float64(s.Position) / float64(head)
	}
	return s
}

// reconcileChains reconciles each coin whose backend can tell its
// wallet's balance (bitcoind) with the books of t, into report.
func reconcileChains(ctx context.Context, coins []CoinConfig, report *appaudit.Report, t *appaudit.Tally) error {
	for _, cc := range coins {
		if cc.Backend == backendNull {
			continue // a simulated chain: nothing to reconcile with
		}
		b, err := openBackend(cc)
		if err != nil {
			return err
		}
		w, ok := b.(appaudit.ChainWallet)
		if ok {
			r, findings := appaudit.Reconcile(ctx, t, cc.Coin, w)
			report.Chains = append(report.Chains, r)
			report.Findings = append(report.Findings, findings...)
		}
		if c, ok := b.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	return nil
}

// verifyLog runs the verifier over src, with a progress bar, then after
// (if not nil) with the report and the fold.
func verifyLog(ctx context.Context, src auditSource, opts appaudit.Options, after func(*appaudit.Report, *appaudit.Tally) error) (appaudit.Report, error) {
	if err := src.prepare(ctx, &opts); err != nil {
		return appaudit.Report{}, err
	}
	v := appaudit.NewVerifier(opts)
	var p auditProgress
	stop := startProgress("verified", p.sample)
	defer stop()
	err := src.read(ctx, func(events []eventstore.Event, redacted bool) {
		switch {
		case redacted:
			for _, e := range events {
				v.AddRedacted(e)
			}
		default:
			v.AddBatch(events)
		}
		p.events.Add(uint64(len(events)))
		p.position.Store(events[len(events)-1].Position)
	}, &p)
	stop()
	if err != nil {
		return appaudit.Report{}, err
	}
	report := v.Finish()
	if after != nil {
		if err := after(&report, v.Tally()); err != nil {
			return report, err
		}
	}
	return report, nil
}

// printReport writes the human report.
func printReport(w io.Writer, r appaudit.Report) {
	signed := "checkpoint signatures NOT checked (no -key)"
	if !r.Unsigned {
		signed = "signatures checked"
	}
	summary := fmt.Sprintf("%d events in %d streams up to position %d, %d wallets, %d checkpoints matched, %s",
		r.Events, r.Streams, r.Position, r.Wallets, r.Checkpoints, signed)
	if r.Linked > 0 {
		summary += fmt.Sprintf(", %d redacted events linked", r.Linked)
	}
	defer func() {
		for _, c := range r.Chains {
			fmt.Fprintf(w, "chain %s\n", c)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}()
	if r.OK() {
		fmt.Fprintf(w, "ok: %s\n", summary)
		return
	}
	n := len(r.Findings)
	for _, k := range r.Omitted {
		n += k
	}
	fmt.Fprintf(w, "FAILED: %d findings; %s\n", n, summary)
	io.WriteString(w, r.String())
	for code, k := range r.Omitted {
		fmt.Fprintf(w, "… and %d more %s\n", k, code)
	}
}

// readKeys adds the public keys of a key file to keys: the published form
// (audit public-key, GET /api/v1/audit/public-key) or one key in hex.
func readKeys(name string, keys map[string]ed25519.PublicKey) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	pubs, err := appaudit.ParsePublicKeys(data)
	if err != nil {
		return fmt.Errorf("key file %s: %w", name, err)
	}
	maps.Copy(keys, appaudit.VerifyingKeys(pubs))
	return nil
}

// defaultKeys finds keys when no -key was given: offline, the data
// directory's key file (its public keys and the liability salt secret,
// so the liability roots are checked too); through a server, the keys it
// serves. It says on standard error where they come from.
func defaultKeys(ctx context.Context, cfg *Config, src auditSource, opts *appaudit.Options) error {
	switch src := src.(type) {
	case *storeSource:
		k, err := readKeyring(auditKeyPath(cfg))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		opts.Keys, opts.Secret = k.Verifying(), k.SaltSecret()
		fmt.Fprintf(os.Stderr, "audit verify: checkpoint keys and salt secret from %s (an independent audit gives -key)\n", auditKeyPath(cfg))
	case *remoteSource:
		if err := src.r.authorize(ctx); err != nil {
			return err
		}
		_, pubs, err := serverPublicKeys(ctx, src.r)
		var pe *problemError
		if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		opts.Keys = appaudit.VerifyingKeys(pubs)
		fmt.Fprintf(os.Stderr, "audit verify: checkpoint keys as the server serves them (an independent audit gives -key)\n")
	}
	return nil
}

// readCheckpoints reads a file of checkpoints: a JSON array, one object a
// line, or an object with a "checkpoints" array (the API's listing).
func readCheckpoints(name string) ([]audit.Checkpoint, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		var list struct {
			Checkpoints []json.RawMessage `json:"checkpoints"`
		}
		if json.Unmarshal(data, &list) == nil && list.Checkpoints != nil {
			raws = list.Checkpoints
		} else {
			raws = nil
			for _, line := range bytes.Split(data, []byte("\n")) {
				if line = bytes.TrimSpace(line); len(line) > 0 {
					raws = append(raws, line)
				}
			}
		}
	}
	out := make([]audit.Checkpoint, 0, len(raws))
	for i, raw := range raws {
		c, err := audit.ParseCheckpoint(raw)
		if err != nil {
			return nil, fmt.Errorf("checkpoint file %s: checkpoint %d: %w", name, i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// logCheckpoints adds the checkpoints among events up to position upTo
// to opts (one that does not parse is left for the pass to report).
func logCheckpoints(opts *appaudit.Options, events []eventstore.Event, upTo uint64) {
	for _, e := range events {
		if e.Stream != audit.Stream || e.Type != audit.TypeCheckpointSigned || e.Position > upTo {
			continue
		}
		if c, err := audit.ParseCheckpoint(e.Data); err == nil {
			opts.Checkpoints = append(opts.Checkpoints, c)
		}
	}
}

// storeSource reads an event store and its read models, offline.
type storeSource struct {
	store eventstore.Store
	db    projections.DB // nil: no read-model check
	head  uint64
}

func (s *storeSource) prepare(ctx context.Context, opts *appaudit.Options) error {
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	s.head = head
	for from := uint64(0); ; {
		events, err := s.store.ReadStream(ctx, audit.Stream, from, 1000)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			break
		}
		logCheckpoints(opts, events, head)
		from = events[len(events)-1].Revision + 1
	}
	if s.db == nil {
		return nil
	}
	// The runner's status: it creates the checkpoint table of a read-model
	// database that has none yet.
	st, err := projections.NewRunner(s.db, s.store, projections.Options{}, wallet.New(), custody.New()).Status(ctx)
	if err != nil {
		return err
	}
	return driftProbes(ctx, s.db, head, opts, func(_ context.Context, _ projections.DB, name string) (uint64, error) {
		for _, m := range st {
			if m.Name == name {
				return m.Position, nil
			}
		}
		return 0, nil
	})
}

// driftProbes adds to opts the probes of the wallet and custody read
// models in db at the positions they have applied the log up to
// (positionOf), if the pass reaches them (head). A read model that never
// applied an event has nothing to compare (and maybe no tables yet).
func driftProbes(ctx context.Context, db projections.DB, head uint64, opts *appaudit.Options,
	positionOf func(context.Context, projections.DB, string) (uint64, error)) error {
	for _, probe := range []struct {
		name string
		at   func(context.Context, projections.DB, uint64) appaudit.Probe
	}{{wallet.New().Name(), appaudit.WalletDrift}, {custody.New().Name(), appaudit.CustodyDrift}} {
		pos, err := positionOf(ctx, db, probe.name)
		if err != nil {
			return err
		}
		if pos == 0 || pos > head {
			continue
		}
		if probe.name == wallet.New().Name() {
			opts.Entries = true
		}
		opts.Probes = append(opts.Probes, probe.at(ctx, db, pos))
	}
	return nil
}

// read pages through the log up to the head, reading the next page while
// this one is checked. (Not Subscribe: the embedded store's reads ahead
// assume positions without gaps, which a tampered log may not have.)
func (s *storeSource) read(ctx context.Context, add func([]eventstore.Event, bool), p *auditProgress) error {
	p.head.Store(s.head)
	type page struct {
		events []eventstore.Event
		err    error
	}
	next := make(chan page, 1)
	fetch := func(after uint64) {
		go func() {
			events, err := s.store.ReadAll(ctx, after, 4096)
			next <- page{events, err}
		}()
	}
	if s.head == 0 {
		return nil
	}
	fetch(0)
	for {
		pg := <-next
		if pg.err != nil {
			return pg.err
		}
		events := pg.events
		i := slices.IndexFunc(events, func(e eventstore.Event) bool { return e.Position > s.head })
		if i >= 0 {
			events = events[:i]
		}
		if len(events) == 0 {
			return nil
		}
		last := events[len(events)-1].Position
		more := i < 0 && last < s.head
		if more {
			fetch(last)
		}
		add(events, false)
		if !more {
			return nil
		}
	}
}

// fileSource reads an export file (gzip or not).
type fileSource string

// open opens the file, decompressing it when it is gzip; p (if not nil)
// counts the file's bytes read.
func (f fileSource) open(p *auditProgress) (io.Reader, func(), error) {
	fh, err := os.Open(string(f))
	if err != nil {
		return nil, nil, err
	}
	counted := &countingReader{r: fh}
	if p != nil {
		if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
			p.size.Store(st.Size())
		}
		p.file.Store(counted)
	}
	br := bufio.NewReaderSize(counted, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			fh.Close()
			return nil, nil, err
		}
		return zr, func() { zr.Close(); fh.Close() }, nil
	}
	return br, func() { fh.Close() }, nil
}

func (f fileSource) prepare(ctx context.Context, opts *appaudit.Options) error {
	r, done, err := f.open(nil)
	if err != nil {
		return err
	}
	defer done()
	_, _, err = dump.Read(ctx, r, func(events []eventstore.Event) error {
		logCheckpoints(opts, events, math.MaxUint64)
		return nil
	})
	return err
}

func (f fileSource) read(ctx context.Context, add func([]eventstore.Event, bool), p *auditProgress) error {
	r, done, err := f.open(p)
	if err != nil {
		return err
	}
	defer done()
	_, _, err = dump.Read(ctx, r, func(events []eventstore.Event) error {
		add(events, false)
		return nil
	})
	return err
}

// remoteSource reads a running server's log through its API.
type remoteSource struct {
	r    *remote
	head uint64
	// db is the server's read-model database when this machine reaches it
	// (the server runs on this data directory): its read models are then
	// compared too, while they hold still (appaudit.WalletDrift).
	db projections.DB
}

func (s *remoteSource) prepare(ctx context.Context, opts *appaudit.Options) error {
	st, err := getStatus(ctx, s.r)
	if err != nil {
		return err
	}
	s.head = st.Store.Head
	if s.db != nil {
		if err := driftProbes(ctx, s.db, s.head, opts, projections.StoredCheckpoint); err != nil {
			return err
		}
	}
	for from := uint64(0); ; {
		var page struct {
			Events []api.Event `json:"events"`
			Next   uint64      `json:"next"`
		}
		err := s.r.call(ctx, http.MethodGet, "/streams/"+url.PathEscape(audit.Stream)+"?limit=1000&from="+strconv.FormatUint(from, 10), nil, &page)
		var pe *problemError
		if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
			return nil // no checkpoint yet
		}
		if err != nil {
			return err
		}
		events := make([]eventstore.Event, len(page.Events))
		for i, a := range page.Events {
			if events[i], err = a.Stored(); err != nil {
				return err
			}
		}
		logCheckpoints(opts, events, s.head)
		if len(page.Events) == 0 || page.Next <= from {
			return nil
		}
		from = page.Next
	}
}

// read reads the server's export (for admins: every event as stored, so
// every hash is recomputed), else GET /api/v1/events (for auditors:
// events holding credentials in the clear are shown redacted and linked).
func (s *remoteSource) read(ctx context.Context, add func([]eventstore.Event, bool), p *auditProgress) error {
	p.head.Store(s.head)
	if s.head == 0 {
		return nil
	}
	resp, err := s.r.stream(ctx, "/events/export?to="+strconv.FormatUint(s.head, 10))
	var pe *problemError
	switch {
	case errors.As(err, &pe) && pe.Status == http.StatusForbidden:
		return s.readEvents(ctx, add)
	case err != nil:
		return err
	}
	defer resp.Body.Close()
	_, _, err = dump.Read(ctx, resp.Body, func(events []eventstore.Event) error {
		add(events, false)
		return nil
	})
	return err
}

// readEvents pages through GET /api/v1/events up to the head.
func (s *remoteSource) readEvents(ctx context.Context, add func([]eventstore.Event, bool)) error {
	for from := uint64(1); from <= s.head; {
		var page struct {
			Events []api.Event `json:"events"`
			Next   uint64      `json:"next"`
		}
		if err := s.r.call(ctx, http.MethodGet, "/events?limit=1000&from="+strconv.FormatUint(from, 10), nil, &page); err != nil {
			return err
		}
		for _, a := range page.Events {
			if a.Position > s.head {
				return nil
			}
			e, err := a.Stored()
			if err != nil {
				return err
			}
			add([]eventstore.Event{e}, a.Redacted)
		}
		if len(page.Events) == 0 || page.Next <= from || page.Next == math.MaxUint64 {
			return nil
		}
		from = page.Next
	}
	return nil
}
