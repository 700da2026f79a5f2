package projections

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrDeposed: a write was refused because the term it was made under is no
// longer the current one (another instance leads the role since). The
// worker that made it steps down; nothing was written.
var ErrDeposed = errors.New("leadership lost: a newer term leads the role")

// Role names of the singleton workers (see Elector).
const (
	RoleProjections      = "projections" // read models in a shared database
	RoleOutbox           = "outbox"
	RoleAlerts           = "alerts"
	RoleExpiry           = "expiry"
	RoleCheckpointSigner = "checkpoint_signer"
	// RoleChainSyncPrefix + coin: the chain syncer of a coin.
	RoleChainSyncPrefix = "chainsync:"
)

// Term is one instance's leadership of a role, from election to loss.
type Term struct {
	Role string
	// Epoch grows with every new leader of Role: the fencing token a
	// write under this term is checked against (see Fencer).
	Epoch uint64
	// Done is closed when the leadership ends: the elector lost its lock
	// (its connection died), the term was resigned, or the elector stopped.
	Done <-chan struct{}
}

// Context returns a context derived from ctx that is also done when the
// term ends: the work of the term runs under it. Call cancel when the work
// ends.
func (t Term) Context(ctx context.Context) (tctx context.Context, cancel context.CancelFunc) {
	tctx, cancel = context.WithCancel(ctx)
	go func() {
		select {
		case <-t.Done:
			cancel()
		case <-tctx.Done():
		}
	}()
	return tctx, cancel
}

// Instance is a running coinledger process as the elector knows it.
type Instance struct {
	ID      string
	Version string
	// Roles are the roles it leads, sorted.
	Roles []string
	// Heartbeat is when it last said it was alive.
	Heartbeat time.Time
}

// Elector grants each role (a singleton worker) to one instance at a time.
//
// Lead blocks until this instance leads role and returns the term, or
// returns ctx's error when ctx is done first. Callers in one process share
// a role's term: Lead returns the current one at once while it holds.
// Nothing guarantees that the previous leader has noticed its loss when
// Lead returns: writes that must not come from two leaders are fenced (the
// Runner's checkpoint compare-and-set, Fencer).
//
// Resign ends term (closing its Done) if it is still the current one; the
// instance may be elected again later, after other instances had a chance.
//
// Self describes this instance, with the roles it leads now; it does no
// I/O. Instances lists every live instance (this one included), sorted by
// ID.
//
// All methods are safe for concurrent use. projections/electortest is the
// suite every implementation passes.
type Elector interface {
	Lead(ctx context.Context, role string) (Term, error)
	Resign(t Term)
	Self() Instance
	Instances(ctx context.Context) ([]Instance, error)
}

// Fencer is an optional capability of an Elector whose terms are recorded
// in the read-model database: Fence checks, inside tx, that t is still the
// current term of its role, and holds that fact until tx ends (a new leader's
// election waits for tx), so a deposed leader's write is refused with
// ErrDeposed instead of being committed.
type Fencer interface {
	Fence(ctx context.Context, tx Tx, t Term) error
}

// Solo is the Elector of a single process (the embedded default): it leads
// every role it is asked for, at once, for ever; it needs no lock.
type Solo struct {
	id, version string
	mu          sync.Mutex
	terms       map[string]soloTerm
	epochs      map[string]uint64 // the last epoch of each role
}

type soloTerm struct {
	t    Term
	done chan struct{}
}

// NewSolo returns the single-process elector of instance id.
func NewSolo(id, version string) *Solo {
	return &Solo{id: id, version: version, terms: map[string]soloTerm{}, epochs: map[string]uint64{}}
}

// Lead returns role's term, electing this instance at once.
func (s *Solo) Lead(ctx context.Context, role string) (Term, error) {
	if err := ctx.Err(); err != nil {
		return Term{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.terms[role]
	if !ok {
		s.epochs[role]++
		st = soloTerm{done: make(chan struct{})}
		st.t = Term{Role: role, Epoch: s.epochs[role], Done: st.done}
		s.terms[role] = st
	}
	return st.t, nil
}

// Resign ends t; the next Lead starts a new term.
func (s *Solo) Resign(t Term) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.terms[t.Role]; ok && st.t.Epoch == t.Epoch {
		close(st.done)
		delete(s.terms, t.Role)
	}
}

// Self reports this instance with the roles given so far.
func (s *Solo) Self() Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	roles := make([]string, 0, len(s.terms))
	for r := range s.terms {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	return Instance{ID: s.id, Version: s.version, Roles: roles, Heartbeat: time.Now().UTC()}
}

// Instances is this instance alone.
func (s *Solo) Instances(context.Context) ([]Instance, error) { return []Instance{s.Self()}, nil }
