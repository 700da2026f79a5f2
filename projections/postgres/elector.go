package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/internal/backoff"
	"github.com/coinledger/coinledger/internal/pg"
	"github.com/coinledger/coinledger/projections"
)

// ElectorOptions tune an Elector. The zero value is usable.
type ElectorOptions struct {
	// Interval is how often the elector says it is alive and tries the
	// locks of the roles it waits for. Default 1 s.
	Interval time.Duration
	// TTL is how long an instance counts as live after its last
	// heartbeat. Default 5 s.
	TTL time.Duration
	// Logger gets a line per role won or lost. Default slog.Default().
	Logger *slog.Logger
}

func (o *ElectorOptions) setDefaults() {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Elector is a projections.Elector on PostgreSQL session advisory locks,
// held on one dedicated connection: a role's lock is keyed by the schema and
// the role's name, so instances on the same database and schema compete for
// it. When the connection dies (the process was killed, the network or the
// server failed) Postgres releases its locks and another instance takes them
// at its next try (every Interval); the loser notices at its next heartbeat
// and ends its terms. Each election increments the role's epoch in
// coinledger_leader_terms, which Fence checks inside the writes of the term.
// Every Interval it also records its heartbeat and the roles it leads in
// coinledger_instances, and reads back the live instances.
//
// Run drives the connection; Lead waits until Run has won the role.
type Elector struct {
	cfg     *pgx.ConnConfig
	id, ver string
	opts    ElectorOptions
	wake    chan struct{}

	mu        sync.Mutex
	roles     map[string]*role
	instances []projections.Instance // as last read
	beat      time.Time              // this instance's last heartbeat
}

// role is one role this instance waits for or leads.
type role struct {
	term    projections.Term
	done    chan struct{} // closes term.Done; nil while not held
	waiters chan struct{} // closed and replaced when the role is won
	resign  bool          // the lock is to be released at the next tick
	after   time.Time     // do not try the lock before then (after resigning)
}

var _ projections.Elector = (*Elector)(nil)
var _ projections.Fencer = (*Elector)(nil)

// NewElector returns an elector of instance id (running version) on the
// database at url. It does no I/O: Run connects.
func NewElector(url, id, version string, opts ElectorOptions) (*Elector, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("elector: cannot parse the Postgres URL") // it may hold a password
	}
	opts.setDefaults()
	return &Elector{cfg: cfg, id: id, ver: version, opts: opts, wake: make(chan struct{}, 1), roles: map[string]*role{}}, nil
}

const electorSchema = `
CREATE TABLE IF NOT EXISTS coinledger_leader_terms (
	role  TEXT PRIMARY KEY,
	epoch BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS coinledger_instances (
	id        TEXT PRIMARY KEY,
	version   TEXT NOT NULL,
	roles     TEXT[] NOT NULL,
	heartbeat TIMESTAMPTZ NOT NULL
)`

// Run keeps the elector's connection until ctx is done: it reconnects
// (with backoff) when the connection fails, ending every term it held.
// On return it releases its locks and removes its heartbeat.
func (e *Elector) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		conn, err := e.connect(ctx)
		if err == nil {
			attempt = 0
			err = e.serve(ctx, conn)
			e.lose("connection ended")
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if ctx.Err() != nil {
				_, _ = conn.Exec(cctx, `DELETE FROM coinledger_instances WHERE id = $1`, e.id)
			}
			_ = conn.Close(cctx) // releases the locks
			cancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		e.opts.Logger.Warn("elector connection failed; retrying", "err", err)
		if !backoff.Sleep(ctx, backoff.Jitter(backoff.Exp(e.opts.Interval/4, e.opts.Interval, attempt))) {
			return nil
		}
	}
}

func (e *Elector) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, e.opts.TTL)
	defer cancel()
	if err := pg.CreateSchema(cctx, e.cfg); err != nil {
		return nil, fmt.Errorf("elector: %w", err)
	}
	conn, err := pgx.ConnectConfig(cctx, e.cfg)
	if err != nil {
		return nil, fmt.Errorf("elector: connect: %w", err)
	}
	// Serialized: CREATE TABLE IF NOT EXISTS races with itself.
	_, err = conn.Exec(cctx, `SELECT pg_advisory_lock(hashtext(current_schema() || '/coinledger/elector'))`)
	if err == nil {
		_, err = conn.Exec(cctx, electorSchema)
		_, uerr := conn.Exec(cctx, `SELECT pg_advisory_unlock(hashtext(current_schema() || '/coinledger/elector'))`)
		err = errors.Join(err, uerr)
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("elector: create tables: %w", err)
	}
	return conn, nil
}

// serve ticks on conn until it fails or ctx is done.
func (e *Elector) serve(ctx context.Context, conn *pgx.Conn) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		// A statement that does not answer within the TTL means the
		// connection is as good as lost: others may hold our roles soon.
		tctx, cancel := context.WithTimeout(ctx, e.opts.TTL-e.opts.Interval/2)
		err := e.tick(tctx, conn)
		cancel()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-e.wake:
		}
	}
}

// tick releases resigned locks, tries the locks of the roles waited for,
// writes the heartbeat with the roles held and reads the live instances.
func (e *Elector) tick(ctx context.Context, conn *pgx.Conn) error {
	e.mu.Lock()
	var release, try []string
	now := time.Now()
	for name, r := range e.roles {
		switch {
		case r.resign:
			release = append(release, name)
		case r.done == nil && !now.Before(r.after):
			try = append(try, name)
		}
	}
	e.mu.Unlock()
	for _, name := range release {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext(current_schema() || '/coinledger/leader/' || $1))`, name); err != nil {
			return fmt.Errorf("elector: release %s: %w", name, err)
		}
		e.mu.Lock()
		if r := e.roles[name]; r != nil {
			r.resign = false
		}
		e.mu.Unlock()
	}
	slices.Sort(try)
	for _, name := range try {
		var won bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext(current_schema() || '/coinledger/leader/' || $1))`, name).Scan(&won); err != nil {
			return fmt.Errorf("elector: try %s: %w", name, err)
		}
		if !won {
			continue
		}
		var epoch int64
		err := conn.QueryRow(ctx, `INSERT INTO coinledger_leader_terms (role, epoch) VALUES ($1, 1)
			ON CONFLICT (role) DO UPDATE SET epoch = coinledger_leader_terms.epoch + 1 RETURNING epoch`, name).Scan(&epoch)
		if err != nil {
			return fmt.Errorf("elector: new term of %s: %w", name, err)
		}
		// The lock proves that whoever the heartbeats say leads it lost it.
		if _, err := conn.Exec(ctx, `UPDATE coinledger_instances SET roles = array_remove(roles, $1)
			WHERE id <> $2 AND $1 = ANY(roles)`, name, e.id); err != nil {
			return fmt.Errorf("elector: new term of %s: %w", name, err)
		}
		e.win(name, uint64(epoch))
	}
	self := e.Self()
	var beat time.Time
	err := conn.QueryRow(ctx, `INSERT INTO coinledger_instances (id, version, roles, heartbeat) VALUES ($1, $2, $3, now())
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, roles = excluded.roles, heartbeat = excluded.heartbeat
		RETURNING heartbeat`, e.id, e.ver, self.Roles).Scan(&beat)
	if err != nil {
		return fmt.Errorf("elector: heartbeat: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT id, version, roles, heartbeat FROM coinledger_instances
		WHERE heartbeat > now() - make_interval(secs => $1) ORDER BY id`, e.opts.TTL.Seconds())
	if err != nil {
		return fmt.Errorf("elector: read instances: %w", err)
	}
	var live []projections.Instance
	for rows.Next() {
		var in projections.Instance
		if err := rows.Scan(&in.ID, &in.Version, &in.Roles, &in.Heartbeat); err != nil {
			rows.Close()
			return fmt.Errorf("elector: read instances: %w", err)
		}
		in.Heartbeat = in.Heartbeat.UTC()
		live = append(live, in)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("elector: read instances: %w", err)
	}
	// Instances gone for long are forgotten.
	if _, err := conn.Exec(ctx, `DELETE FROM coinledger_instances WHERE heartbeat < now() - interval '1 hour'`); err != nil {
		return fmt.Errorf("elector: prune instances: %w", err)
	}
	e.mu.Lock()
	e.instances, e.beat = live, beat.UTC()
	e.mu.Unlock()
	return nil
}

// win starts a term of role name.
func (e *Elector) win(name string, epoch uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roles[name]
	r.done = make(chan struct{})
	r.term = projections.Term{Role: name, Epoch: epoch, Done: r.done}
	close(r.waiters)
	r.waiters = make(chan struct{})
	e.opts.Logger.Info("leader elected", "role", name, "epoch", epoch, "instance", e.id)
}

// lose ends every term held (the connection that held the locks is gone).
func (e *Elector) lose(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, r := range e.roles {
		r.resign = false
		if r.done != nil {
			close(r.done)
			r.done = nil
			e.opts.Logger.Warn("leadership lost", "role", name, "epoch", r.term.Epoch, "instance", e.id, "reason", why)
		}
	}
}

// Lead waits until this instance leads role; see projections.Elector.
func (e *Elector) Lead(ctx context.Context, name string) (projections.Term, error) {
	for {
		e.mu.Lock()
		r := e.roles[name]
		if r == nil {
			r = &role{waiters: make(chan struct{})}
			e.roles[name] = r
			select {
			case e.wake <- struct{}{}:
			default:
			}
		}
		if r.done != nil {
			t := r.term
			e.mu.Unlock()
			return t, nil
		}
		wait := r.waiters
		e.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return projections.Term{}, ctx.Err()
		}
	}
}

// Resign ends t and releases its lock at once; this instance tries the
// role again after a few intervals, so that another may take it.
func (e *Elector) Resign(t projections.Term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roles[t.Role]
	if r == nil || r.done == nil || r.term.Epoch != t.Epoch {
		return
	}
	close(r.done)
	r.done, r.resign, r.after = nil, true, time.Now().Add(3*e.opts.Interval)
	e.opts.Logger.Info("leadership resigned", "role", t.Role, "epoch", t.Epoch, "instance", e.id)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Self reports this instance and the roles it leads; see
// projections.Elector.
func (e *Elector) Self() projections.Instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	roles := []string{}
	for name, r := range e.roles {
		if r.done != nil {
			roles = append(roles, name)
		}
	}
	slices.Sort(roles)
	return projections.Instance{ID: e.id, Version: e.ver, Roles: roles, Heartbeat: e.beat}
}

// Instances lists the live instances as read at the last heartbeat (at
// most Interval old), with this one as it stands now.
func (e *Elector) Instances(context.Context) ([]projections.Instance, error) {
	self := e.Self()
	e.mu.Lock()
	out := make([]projections.Instance, 0, len(e.instances)+1)
	for _, in := range e.instances {
		if in.ID != self.ID {
			out = append(out, in)
		}
	}
	e.mu.Unlock()
	out = append(out, self)
	slices.SortFunc(out, func(a, b projections.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Fence checks inside tx (a transaction on the database the elector runs
// on) that t is the current term of its role, and keeps the term's row
// share-locked until tx ends: a new election waits for tx to end. It
// returns projections.ErrDeposed when another term has begun since.
func (e *Elector) Fence(ctx context.Context, tx projections.Tx, t projections.Term) error {
	var epoch int64
	err := tx.QueryRow(ctx, `SELECT epoch FROM coinledger_leader_terms WHERE role = ? FOR SHARE`, t.Role).Scan(&epoch)
	if err != nil {
		return fmt.Errorf("fence %s@%d: %w", t.Role, t.Epoch, err)
	}
	if uint64(epoch) != t.Epoch {
		return fmt.Errorf("fence %s@%d: epoch is %d: %w", t.Role, t.Epoch, epoch, projections.ErrDeposed)
	}
	return nil
}
