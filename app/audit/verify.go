package audit

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"golang.org/x/sync/errgroup"
)

// Codes of findings: stable, for scripts and tests.
const (
	// CodeChainBroken: an event's hash does not recompute from its content
	// and the previous hash of its stream (its data or metadata changed).
	CodeChainBroken = "chain_broken"
	// CodeRevisionGap: a stream's revisions skip or repeat (an event
	// deleted or moved out of its stream's order).
	CodeRevisionGap = "revision_gap"
	// CodePositionOrder: global positions do not increase.
	CodePositionOrder = "position_order"
	// CodeUndecodable: a ledger event whose data does not decode.
	CodeUndecodable = "undecodable_event"
	// CodeUnbalanced: an event's postings do not sum to zero, so its
	// wallet's balances no longer do.
	CodeUnbalanced = "unbalanced_event"
	// CodeNegativeBalance: a user account's balance went below zero.
	CodeNegativeBalance = "negative_balance"
	// CodeLedgerInvariant: a wallet breaks a rule of ledger.State.Verify
	// (held ≠ holds and withdrawals in flight, pending ≠ seen deposits, …).
	CodeLedgerInvariant = "ledger_invariant"
	// CodeCheckpointInvalid: a checkpoint event that does not parse.
	CodeCheckpointInvalid = "checkpoint_invalid"
	// CodeUnknownKey: a checkpoint signed by a key the auditor does not hold.
	CodeUnknownKey = "checkpoint_unknown_key"
	// CodeBadSignature: a checkpoint whose signature does not verify.
	CodeBadSignature = "checkpoint_bad_signature"
	// CodeGlobalChain: at a checkpoint, the log's global chain differs from
	// the one signed (an event at or before it edited, deleted, inserted or
	// moved, even with its stream's chain recomputed).
	CodeGlobalChain = "global_chain_mismatch"
	// CodeStreamHeads: at a checkpoint, the streams' heads differ from the
	// ones signed (a stream or its newest events deleted).
	CodeStreamHeads = "stream_heads_mismatch"
	// CodeLiabilities: at a checkpoint, what the log says the service owes
	// per coin differs from the signed liability totals (or roots).
	CodeLiabilities = "liabilities_mismatch"
	// CodeCheckpointUnreached: the log ends before a checkpoint's event
	// count (its tail cut).
	CodeCheckpointUnreached = "checkpoint_unreached"
	// CodeCheckpointUnmatched: a checkpoint met in the log that was not
	// given before the pass, so the log could not be compared with it.
	CodeCheckpointUnmatched = "checkpoint_unmatched"
	// CodeReadModelDrift: a read-model row differs from what the log folds to.
	CodeReadModelDrift = "read_model_drift"
)

// Finding is one thing the verifier found wrong, at the first place it
// shows: the event's store position and its stream and revision (in JSON
// a revision of 0 is left out), or the checkpoint's number.
type Finding struct {
	Code       string `json:"code"`
	Position   uint64 `json:"position,omitempty"`
	Stream     string `json:"stream,omitempty"`
	Revision   uint64 `json:"revision,omitempty"`
	Checkpoint uint64 `json:"checkpoint,omitempty"` // the checkpoint's number
	Message    string `json:"message"`
}

func (f Finding) String() string {
	var where []string
	if f.Position > 0 {
		where = append(where, fmt.Sprintf("position %d", f.Position))
	}
	if f.Stream != "" {
		where = append(where, fmt.Sprintf("%s@%d", f.Stream, f.Revision))
	}
	if f.Checkpoint > 0 {
		where = append(where, fmt.Sprintf("checkpoint %d", f.Checkpoint))
	}
	if len(where) == 0 {
		return f.Code + ": " + f.Message
	}
	return f.Code + " at " + strings.Join(where, ", ") + ": " + f.Message
}

// DefaultMaxPerCode is how many findings of one code a report keeps.
const DefaultMaxPerCode = 20

// Options configure a Verifier.
type Options struct {
	// Keys are the public keys the auditor holds, by key id (audit.KeyID).
	// Without any, checkpoint signatures are not checked (Report.Unsigned).
	Keys map[string]ed25519.PublicKey
	// Checkpoints are every checkpoint known before the pass: received out
	// of band and the log's own, read first (a checkpoint's event comes
	// after the events it states, too late to compare them in one pass).
	Checkpoints []audit.Checkpoint
	// Secret, when given, is the service's secret: the liability trees'
	// roots are recomputed too, not only their totals.
	Secret []byte
	// MaxPerCode caps the findings kept per code (default
	// DefaultMaxPerCode); the others are only counted.
	MaxPerCode int
	// Probes look at the fold at given positions: the read-model drift
	// checks (WalletDrift, CustodyDrift).
	Probes []Probe
	// Entries makes the verifier keep every account's entries (Entries)
	// for a probe.
	Entries bool
}

// Probe is called once with the verifier as of the last event at or
// before At (at the end if the log ends before), and its findings are
// reported.
type Probe struct {
	At  uint64
	Run func(v *Verifier) []Finding
}

// Verifier checks a log read in global order (Add): every stream's chain
// and revisions, every checkpoint's signature and statement, and the
// ledger's rules in every wallet after every event. It is not safe for
// concurrent use.
type Verifier struct {
	opts   Options
	chains *eventstore.Verifier
	tally  *Tally
	states map[string]*ledger.State
	// deposits counts the deposits seen per wallet.
	deposits map[string]int
	entries  map[string][]Entry

	pending  []*pendingCheckpoint // given, not yet compared, by Events
	byPos    []*pendingCheckpoint // the same, by Position, not yet passed
	given    map[string]bool      // by identity (checkpointID)
	matched  int
	probes   []Probe                     // not run yet, by At
	notes    []string                    // what the report says beside findings (Note)
	stored   map[string]*eventstore.Hash // the stored hash of each stream's last event pushed
	inflight *batch                      // pushed, not checked yet
	last     uint64                      // position of the last event
	findings []Finding
	counts   map[string]int
	accounts []string // scratch: the accounts an event touches
}

// Entry is an account's balances after an event that moved them: a row
// of the wallet read model's entries.
type Entry struct {
	Position uint64
	Balance  ledger.Balance
}

// NewVerifier returns a verifier of an empty log.
func NewVerifier(opts Options) *Verifier {
	if opts.MaxPerCode <= 0 {
		opts.MaxPerCode = DefaultMaxPerCode
	}
	v := &Verifier{opts: opts, chains: eventstore.NewVerifier(), tally: NewTally(), states: map[string]*ledger.State{},
		deposits: map[string]int{}, stored: map[string]*eventstore.Hash{}, entries: map[string][]Entry{}, given: map[string]bool{},
		counts: map[string]int{}}
	for _, c := range opts.Checkpoints {
		id := checkpointID(c)
		if v.given[id] {
			continue // the same checkpoint, out of band and in the log
		}
		v.given[id] = true
		v.checkSignature(c, 0)
		v.pending = append(v.pending, &pendingCheckpoint{c: c})
	}
	v.probes = slices.Clone(opts.Probes)
	slices.SortStableFunc(v.probes, func(a, b Probe) int { return cmp.Compare(a.At, b.At) })
	slices.SortStableFunc(v.pending, func(a, b *pendingCheckpoint) int { return cmp.Compare(a.c.Events, b.c.Events) })
	v.byPos = slices.Clone(v.pending)
	slices.SortStableFunc(v.byPos, func(a, b *pendingCheckpoint) int { return cmp.Compare(a.c.Position, b.c.Position) })
	return v
}

// Add verifies the next event of the log. Its hash is recomputed.
func (v *Verifier) Add(e eventstore.Event) { v.push([]eventstore.Event{e}, false) }

// AddRedacted verifies the next event of the log, shown with its data
// redacted: its hash is linked, not recomputed (eventstore.Verifier.Link).
func (v *Verifier) AddRedacted(e eventstore.Event) { v.push([]eventstore.Event{e}, true) }

// AddBatch verifies the next events of the log, as many Adds would. The
// work that needs no other event (recomputing hashes, decoding) is done on
// every CPU, and overlaps with the checks of the batch before: AddBatch
// may return before events are checked, and keeps events until the next
// call or Finish (do not change them).
func (v *Verifier) AddBatch(events []eventstore.Event) { v.push(events, false) }

// batch is events on their way through the verifier.
type batch struct {
	events   []eventstore.Event
	redacted bool
	prev     []eventstore.Hash // the stored hash of each event's predecessor in its stream
	prep     []prepared
	done     chan struct{} // closed when prep is ready
}

// prepared is what the verifier computes for an event without the others.
type prepared struct {
	hash   eventstore.Hash // recomputed (not for a redacted event)
	wallet string
	ev     ledger.Event // nil: not a ledger event
	err    error        // of decoding
}

// parallelMin is the smallest batch prepared on several goroutines.
const parallelMin = 256

// push starts preparing events and checks the batch before them.
func (v *Verifier) push(events []eventstore.Event, redacted bool) {
	if len(events) == 0 {
		return
	}
	b := &batch{events: events, redacted: redacted, prev: make([]eventstore.Hash, len(events)),
		prep: make([]prepared, len(events)), done: make(chan struct{})}
	for i, e := range events {
		h := v.stored[e.Stream]
		if h == nil {
			h = new(eventstore.Hash)
			v.stored[e.Stream] = h
		}
		b.prev[i], *h = *h, e.Hash
	}
	if len(events) < parallelMin {
		v.drain()
		v.prepare(b, 0, len(events))
		close(b.done)
		v.check(b)
		return
	}
	parts := min(runtime.GOMAXPROCS(0), len(events)/parallelMin)
	var g errgroup.Group
	for p := range parts {
		lo, hi := p*len(events)/parts, (p+1)*len(events)/parts
		g.Go(func() error { v.prepare(b, lo, hi); return nil })
	}
	go func() { g.Wait(); close(b.done) }()
	v.drain()
	v.inflight = b
}

// drain checks the batch in flight, if any.
func (v *Verifier) drain() {
	if b := v.inflight; b != nil {
		v.inflight = nil
		v.check(b)
	}
}

// prepare recomputes the hashes of b's events from lo to hi and decodes
// them; it reads only b and the codec, so several run at once.
func (v *Verifier) prepare(b *batch, lo, hi int) {
	buf := make([]byte, 0, 1024)
	books := v.tally.Books()
	for i := lo; i < hi; i++ {
		e := b.events[i]
		p := &b.prep[i]
		if !b.redacted {
			p.hash = eventstore.AppendChainHash(buf, b.prev[i], e)
		}
		p.wallet, p.ev, p.err = books.Decode(e)
	}
}

// check checks b's events in order, once they are prepared.
func (v *Verifier) check(b *batch) {
	<-b.done
	for i := range b.events {
		v.add(&b.events[i], b.redacted, &b.prep[i])
	}
}

func (v *Verifier) add(e *eventstore.Event, redacted bool, p *prepared) {
	v.beforeEvent(e)
	if e.Position <= v.last && v.tally.Chain.Events > 0 {
		v.find(Finding{Code: CodePositionOrder, Position: e.Position, Stream: e.Stream, Revision: e.Revision,
			Message: fmt.Sprintf("position %d after position %d", e.Position, v.last)})
	}
	v.last = e.Position
	v.chain(e, redacted, p.hash)
	v.tally.AddDecoded(*e, p.wallet, p.ev)
	if p.err != nil {
		v.find(Finding{Code: CodeUndecodable, Position: e.Position, Stream: e.Stream, Revision: e.Revision, Message: p.err.Error()})
	}
	if p.ev != nil {
		v.ledger(e, p.wallet, p.ev)
	}
	if e.Stream == audit.Stream && e.Type == audit.TypeCheckpointSigned {
		v.metCheckpoint(e)
	}
	v.afterEvent()
}

// chain checks e's place and hash (recomputed, unless e is redacted) in
// its stream.
func (v *Verifier) chain(e *eventstore.Event, redacted bool, hash eventstore.Hash) {
	var err error
	if redacted {
		err = v.chains.Link(*e)
	} else {
		err = v.chains.VerifyHashed(*e, hash)
	}
	if err == nil {
		return
	}
	var ce *eventstore.ChainError
	if !errors.As(err, &ce) {
		return
	}
	code := CodeChainBroken
	if e.Revision != v.tally.Heads()[e.Stream].Next {
		code = CodeRevisionGap
	}
	v.find(Finding{Code: code, Position: e.Position, Stream: e.Stream, Revision: e.Revision, Message: ce.Reason})
	v.chains.Resume(*e) // one broken link is one finding
}

// ledger checks the rules of double entry on a wallet's event and folds it
// into the wallet's state.
func (v *Verifier) ledger(e *eventstore.Event, wallet string, ev ledger.Event) {
	s := v.states[wallet]
	if s == nil {
		s = ledger.NewFold() // the verifier never reads idempotency keys
		v.states[wallet] = s
	}
	ps := ledger.PostingsOf(ev)
	var sum int64
	ok := true
	v.accounts = v.accounts[:0]
	for _, p := range ps {
		if sum, ok = money.AddUnits(sum, p.Amount); !ok {
			break
		}
		if !slices.Contains(v.accounts, p.Account) {
			v.accounts = append(v.accounts, p.Account)
		}
	}
	if !ok || sum != 0 {
		v.find(Finding{Code: CodeUnbalanced, Position: e.Position, Stream: e.Stream, Revision: e.Revision,
			Message: fmt.Sprintf("%s: postings sum to %d (overflow: %v), not zero: wallet %s no longer sums to zero", e.Type, sum, !ok, wallet)})
	}
	if d, ok := ev.(ledger.DepositSeen); ok {
		if _, known := s.Deposit(d.TxID, d.Vout); !known {
			v.deposits[wallet]++
		}
	}
	ledger.Evolve(s, ev)
	for _, a := range v.accounts {
		b, _ := s.Balance(a)
		if !ledger.IsSystemAccount(a) && (b.Available < 0 || b.Pending < 0 || b.Held < 0) {
			v.find(Finding{Code: CodeNegativeBalance, Position: e.Position, Stream: e.Stream, Revision: e.Revision,
				Message: fmt.Sprintf("%s: account %s/%s: available %d, pending %d, held %d", e.Type, wallet, a, b.Available, b.Pending, b.Held)})
		}
		if v.opts.Entries {
			k := LiabilityAccount(wallet, a)
			v.entries[k] = append(v.entries[k], Entry{Position: e.Position, Balance: b})
		}
	}
}

// metCheckpoint checks a checkpoint event of the log: it parses, is
// signed, and was given before the pass (then the log was compared with
// it when it reached its event count).
func (v *Verifier) metCheckpoint(e *eventstore.Event) {
	c, err := audit.ParseCheckpoint(e.Data)
	if err != nil {
		v.find(Finding{Code: CodeCheckpointInvalid, Position: e.Position, Stream: e.Stream, Revision: e.Revision, Message: err.Error()})
		return
	}
	if v.given[checkpointID(c)] {
		return // checked when given
	}
	v.checkSignature(c, e.Position)
	if c.Events >= v.tally.Chain.Events {
		v.find(Finding{Code: CodeGlobalChain, Position: e.Position, Stream: e.Stream, Revision: e.Revision, Checkpoint: c.Number,
			Message: fmt.Sprintf("checkpoint states %d events, but it is event %d of the log", c.Events, v.tally.Chain.Events)})
		return
	}
	v.find(Finding{Code: CodeCheckpointUnmatched, Position: e.Position, Stream: e.Stream, Revision: e.Revision, Checkpoint: c.Number,
		Message: "not given before the pass: the log was not compared with it"})
}

// checkpointID identifies a checkpoint by all it says and its signature.
func checkpointID(c audit.Checkpoint) string { return string(c.SigningBytes()) + string(c.Signature) }

// checkSignature verifies c with the auditor's keys (none: not checked).
func (v *Verifier) checkSignature(c audit.Checkpoint, position uint64) {
	if len(v.opts.Keys) == 0 {
		return
	}
	err := c.Verify(v.opts.Keys)
	switch {
	case errors.Is(err, audit.ErrUnknownKey):
		v.find(Finding{Code: CodeUnknownKey, Position: position, Checkpoint: c.Number, Message: err.Error()})
	case err != nil:
		v.find(Finding{Code: CodeBadSignature, Position: position, Checkpoint: c.Number, Message: err.Error()})
	}
}

// pendingCheckpoint is a given checkpoint the log has not reached.
type pendingCheckpoint struct {
	c audit.Checkpoint
	// passed: the log went past the checkpoint's position before reaching
	// its event count, and atPosition is how it differed there.
	passed     bool
	atPosition []Finding
}

// beforeEvent runs the probes e goes past, and compares the log with the
// checkpoints whose position e goes past: if the log never reaches their
// event count (events before them deleted), that is how it differs.
func (v *Verifier) beforeEvent(e *eventstore.Event) {
	for len(v.probes) > 0 && e.Position > v.probes[0].At {
		v.probe()
	}
	for len(v.byPos) > 0 && e.Position > v.byPos[0].c.Position {
		v.pass(v.byPos[0])
		v.byPos = v.byPos[1:]
	}
}

// pass compares the log, as at p's position, with p's checkpoint.
func (v *Verifier) pass(p *pendingCheckpoint) {
	if v.tally.Chain.Events < p.c.Events {
		p.passed, p.atPosition = true, v.compare(p.c)
	}
}

// afterEvent compares the log with the checkpoints that state its event
// count. Positions change when a log is imported into another store, the
// event count does not: it is what checkpoints are matched by.
func (v *Verifier) afterEvent() {
	for len(v.pending) > 0 && v.pending[0].c.Events <= v.tally.Chain.Events {
		c := v.pending[0].c
		v.pending = v.pending[1:]
		if c.Events == v.tally.Chain.Events {
			v.matched++
			for _, f := range v.compare(c) {
				v.find(f)
			}
		}
	}
}

// probe runs the next probe.
func (v *Verifier) probe() {
	p := v.probes[0]
	v.probes = v.probes[1:]
	for _, f := range p.Run(v) {
		v.find(f)
	}
}

// compare returns how the log as it is now differs from what c states.
func (v *Verifier) compare(c audit.Checkpoint) []Finding {
	var out []Finding
	t := v.tally
	at := func(code, msg string, args ...any) {
		out = append(out, Finding{Code: code, Position: t.Last.Position, Stream: t.Last.Stream, Revision: t.Last.Revision, Checkpoint: c.Number,
			Message: fmt.Sprintf(msg, args...)})
	}
	if t.Chain.Events != c.Events || audit.Hash(t.Chain.Head) != c.GlobalHead {
		at(CodeGlobalChain, "after %d events the global chain is %s, the checkpoint states %s after %d", t.Chain.Events,
			eventstore.Hash(t.Chain.Head), eventstore.Hash(c.GlobalHead), c.Events)
	}
	heads := t.Heads()
	if root := audit.StreamRoot(heads); uint64(len(heads)) != c.Streams || root != c.StreamRoot {
		at(CodeStreamHeads, "%d streams with root %s, the checkpoint states %d with root %s", len(heads),
			eventstore.Hash(root), c.Streams, eventstore.Hash(c.StreamRoot))
	}
	owed := t.Owed()
	var roots map[string]audit.Hash
	if v.opts.Secret != nil {
		s, _, err := t.Statement(c.Number, v.opts.Secret)
		if err != nil {
			at(CodeLiabilities, "%v", err)
		}
		roots = map[string]audit.Hash{}
		for _, r := range s.Liabilities {
			roots[r.Coin] = r.Hash
		}
	}
	coins := map[string]bool{}
	for coin := range owed {
		coins[coin] = true
	}
	for _, r := range c.Liabilities {
		coins[r.Coin] = true
	}
	for _, coin := range slices.Sorted(maps.Keys(coins)) {
		var total int64
		for _, o := range owed[coin] {
			total += o.Balance
		}
		r, ok := c.Liability(coin)
		switch {
		case !ok:
			at(CodeLiabilities, "%s: the log owes %d, the checkpoint states no liabilities", coin, total)
		case r.Total != total:
			at(CodeLiabilities, "%s: the log owes %d, the checkpoint states %d", coin, total, r.Total)
		case roots != nil && roots[coin] != r.Hash:
			at(CodeLiabilities, "%s: liability root %s, the checkpoint states %s", coin, eventstore.Hash(roots[coin]), eventstore.Hash(r.Hash))
		}
	}
	return out
}

// Finish ends the pass: checkpoints whose event count the log never
// reached (how it differed at their position, if it went past it; else a
// cut tail), the probes that have not run, the full ledger rules of every wallet. It returns the
// report.
func (v *Verifier) Finish() Report {
	v.drain()
	for _, p := range v.byPos {
		if v.tally.Last.Position >= p.c.Position {
			v.pass(p)
		}
	}
	for _, p := range v.pending {
		if p.passed {
			for _, f := range p.atPosition {
				v.find(f)
			}
			continue
		}
		c := p.c
		v.find(Finding{Code: CodeCheckpointUnreached, Checkpoint: c.Number, Position: c.Position,
			Message: fmt.Sprintf("the checkpoint states %d events at position %d, the log has %d events up to position %d",
				c.Events, c.Position, v.tally.Chain.Events, v.tally.Last.Position)})
	}
	v.pending, v.byPos = nil, nil
	for len(v.probes) > 0 {
		v.probe()
	}
	for _, wallet := range slices.Sorted(maps.Keys(v.states)) {
		if err := v.states[wallet].Verify(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				v.find(Finding{Code: CodeLedgerInvariant, Stream: ledger.StreamPrefix + wallet,
					Message: fmt.Sprintf("wallet %s: %s", wallet, line)})
			}
		}
	}
	r := Report{Events: v.tally.Chain.Events, Streams: len(v.tally.Heads()), Position: v.tally.Last.Position,
		GlobalHead: v.tally.Chain.Head, Wallets: len(v.states), Checkpoints: v.matched, Linked: v.chains.Linked,
		Unsigned: len(v.opts.Keys) == 0, Findings: v.findings, Omitted: map[string]int{}}
	for code, n := range v.counts {
		if n > v.opts.MaxPerCode {
			r.Omitted[code] = n - v.opts.MaxPerCode
		}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Notes = v.notes
	return r
}

// Note adds a line to the report that is not a finding (what a probe
// compared, or why it did not).
func (v *Verifier) Note(format string, args ...any) {
	v.notes = append(v.notes, fmt.Sprintf(format, args...))
}

// find records f unless its code has reached the cap.
func (v *Verifier) find(f Finding) {
	v.counts[f.Code]++
	if v.counts[f.Code] <= v.opts.MaxPerCode {
		v.findings = append(v.findings, f)
	}
}

// Tally returns the fold of the events checked so far: inside a probe, or
// after Finish (AddBatch may not have checked its events yet).
func (v *Verifier) Tally() *Tally { return v.tally }

// State returns a wallet's ledger as folded so far, as Tally (nil: no
// such wallet).
func (v *Verifier) State(wallet string) *ledger.State { return v.states[wallet] }

// Deposits returns how many deposits a wallet has seen.
func (v *Verifier) Deposits(wallet string) int { return v.deposits[wallet] }

// Entries returns the entries of every account ("<wallet>/<account>") so
// far, oldest first (only with Options.Entries).
func (v *Verifier) Entries() map[string][]Entry { return v.entries }

// Report is the outcome of a pass.
type Report struct {
	Events      uint64          `json:"events"`
	Streams     int             `json:"streams"`
	Position    uint64          `json:"position"`
	GlobalHead  eventstore.Hash `json:"global_head"`
	Wallets     int             `json:"wallets"`
	Checkpoints int             `json:"checkpoints_matched"`
	// Linked counts events shown redacted, whose hashes were linked, not
	// recomputed.
	Linked uint64 `json:"linked"`
	// Unsigned: no public key was given, so no signature was checked.
	Unsigned bool      `json:"unsigned"`
	Findings []Finding `json:"findings"`
	// Omitted counts the findings left out per code (over MaxPerCode).
	Omitted map[string]int `json:"omitted,omitempty"`
	// Chains reconciles each coin with its node's wallet, where one was
	// reachable (Reconcile).
	Chains []Reconciliation `json:"chains,omitempty"`
	// Notes say what was compared besides the log, or why not.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether the pass found nothing wrong.
func (r Report) OK() bool { return len(r.Findings) == 0 }

// String lists a report's findings, one a line.
func (r Report) String() string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}
