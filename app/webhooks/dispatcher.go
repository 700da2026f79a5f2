package webhooks

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/hook"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// FollowerName is the dispatcher's name in the runner.
const FollowerName = "webhooks"

// dispatcherVersion is the version of the dispatcher's state and snapshot.
const dispatcherVersion = 1

// Actor is the metadata actor of the deliveries the dispatcher queues.
const Actor = "webhooks"

// Queuer queues a delivery in the outbox (*outbox.Notifier).
type Queuer interface {
	Queue(ctx context.Context, q outbox.Queued, meta eventstore.Metadata) error
}

// Payload is the JSON body of a hook delivery.
type Payload struct {
	DeliveryID string `json:"delivery_id"`
	// Event is the kind ("deposit.confirmed", "transfer"), for holds
	// "hold.placed", "hold.released" or "hold.expired".
	Event  string `json:"event"`
	Hook   string `json:"hook"`
	Wallet string `json:"wallet"`
	// Position, Stream, Revision, EventType and Time are the ledger
	// event's. A hook's deliveries are sent one at a time in log order;
	// only a redelivery asked for comes again later.
	Position  uint64    `json:"position"`
	Stream    string    `json:"stream"`
	Revision  uint64    `json:"revision"`
	EventType string    `json:"event_type"`
	Time      time.Time `json:"time"`
	// Data is the event in the API's representation (ledger.Outward).
	Data json.RawMessage `json:"data"`
}

// Dispatcher is the projections.Follower that turns ledger events into
// hook deliveries: it keeps the live hooks (without secrets) by wallet and
// the wallets' coins, and for each ledger event a hook asks for it queues
// delivery <hook>.<n>.hook, n counting that hook's deliveries in log order.
// A replay queues nothing twice: the delivery ids are deterministic and the
// outbox's append expects no stream.
type Dispatcher struct {
	queue Queuer
	clock func() time.Time
	codec *eventstore.Codec[hook.Event] // without the keyring: no secrets

	mu    sync.Mutex
	state state
}

// state is what the dispatcher keeps, and its snapshot.
type state struct {
	Hooks  map[hook.ID]*entry `json:"hooks"`
	Assets map[string]asset   `json:"assets"` // by wallet
}

// entry is a live hook as the dispatcher knows it.
type entry struct {
	hook.Registered
	Sent int `json:"sent"` // deliveries queued so far
}

type asset struct {
	Coin     string `json:"coin"`
	Exponent int    `json:"exponent"`
}

var (
	_ projections.Follower      = (*Dispatcher)(nil)
	_ projections.Selective     = (*Dispatcher)(nil)
	_ projections.SideEffecting = (*Dispatcher)(nil)
)

func newDispatcher(q Queuer, clock func() time.Time) *Dispatcher {
	return &Dispatcher{queue: q, clock: clock, codec: eventstore.NewCodecOf(hook.Events()...), state: emptyState()}
}

func emptyState() state { return state{Hooks: map[hook.ID]*entry{}, Assets: map[string]asset{}} }

// Name is FollowerName.
func (d *Dispatcher) Name() string { return FollowerName }

// Version is the version of the state.
func (d *Dispatcher) Version() int { return dispatcherVersion }

// SideEffects marks the dispatcher as one that appends.
func (d *Dispatcher) SideEffects() {}

// Wants reports whether e may change the state or queue deliveries.
func (d *Dispatcher) Wants(e eventstore.Event) bool {
	if strings.HasPrefix(e.Stream, hook.StreamPrefix) {
		return d.codec.Knows(e.Type)
	}
	if !strings.HasPrefix(e.Stream, ledger.StreamPrefix) {
		return false
	}
	_, ok := hook.KindOf(e.Type)
	return ok || e.Type == ledger.TypeWalletOpened
}

// Handle folds e into the state and queues its deliveries. On failure the
// state is unchanged; a retry re-queues the same delivery ids, which the
// outbox takes as queued already.
func (d *Dispatcher) Handle(ctx context.Context, e eventstore.Event) error {
	switch {
	case strings.HasPrefix(e.Stream, hook.StreamPrefix):
		ev, err := d.codec.Decode(e)
		if err != nil {
			return fmt.Errorf("decode %s@%d: %w", e.Stream, e.Revision, err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		switch ev := ev.(type) {
		case hook.Registered:
			ev.Secret = ""
			d.state.Hooks[ev.ID] = &entry{Registered: ev}
		case hook.Deleted:
			delete(d.state.Hooks, ev.ID)
		}
		return nil
	case e.Type == ledger.TypeWalletOpened:
		var w ledger.WalletOpened
		if err := json.Unmarshal(e.Data, &w); err != nil {
			return fmt.Errorf("decode %s@%d: %w", e.Stream, e.Revision, err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.state.Assets[w.Wallet] = asset{Coin: w.Coin, Exponent: w.Exponent}
		return nil
	}
	return d.dispatch(ctx, e)
}

// dispatch queues the deliveries of a ledger event.
func (d *Dispatcher) dispatch(ctx context.Context, e eventstore.Event) error {
	wallet := strings.TrimPrefix(e.Stream, ledger.StreamPrefix)
	var touched struct{ Account, From, To string }
	if err := json.Unmarshal(e.Data, &touched); err != nil {
		return fmt.Errorf("decode %s@%d: %w", e.Stream, e.Revision, err)
	}
	accounts := []string{touched.Account, touched.From, touched.To}
	d.mu.Lock()
	var hooks []entry
	for _, h := range d.state.Hooks {
		if h.Wallet == wallet && (&hook.Hook{Registered: h.Registered}).Wants(e.Type, accounts) {
			hooks = append(hooks, *h)
		}
	}
	a, known := d.state.Assets[wallet]
	d.mu.Unlock()
	if len(hooks) == 0 {
		return nil
	}
	if !known {
		return fmt.Errorf("dispatch %s@%d: the wallet's opening was not read", e.Stream, e.Revision)
	}
	coin, err := money.NewAsset(a.Coin, a.Exponent)
	if err != nil {
		return fmt.Errorf("dispatch %s@%d: %w", e.Stream, e.Revision, err)
	}
	data, err := ledger.Outward(e.Data, coin)
	if err != nil {
		return fmt.Errorf("dispatch %s@%d: %w", e.Stream, e.Revision, err)
	}
	slices.SortFunc(hooks, func(x, y entry) int { return cmp.Compare(x.ID, y.ID) })
	name := hook.EventName(e.Type)
	for _, h := range hooks {
		id := outbox.HookDeliveryID(string(h.ID), h.Sent+1)
		body, err := json.Marshal(Payload{DeliveryID: id, Event: name, Hook: string(h.ID), Wallet: wallet,
			Position: e.Position, Stream: e.Stream, Revision: e.Revision, EventType: e.Type, Time: e.Created.UTC(), Data: data})
		if err != nil {
			return fmt.Errorf("dispatch %s@%d: %w", e.Stream, e.Revision, err)
		}
		q := outbox.Queued{DeliveryID: id, Seq: h.Sent + 1, Channel: outbox.ChannelHook, To: h.URL, Owner: h.Owner,
			Hook: string(h.ID), Wallet: wallet, Event: name, Body: body, At: d.clock().UTC()}
		meta := eventstore.Metadata{Actor: Actor, CausationID: e.ID.String(), CorrelationID: e.Metadata.CorrelationID,
			IdempotencyKey: id + "#queued"}
		if err := d.queue.Queue(ctx, q, meta); err != nil {
			return fmt.Errorf("dispatch %s@%d to hook %s: %w", e.Stream, e.Revision, h.ID, err)
		}
	}
	// Only now, all queued: a failure above leaves the counts, so the
	// retry queues the same ids.
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range hooks {
		if cur, ok := d.state.Hooks[h.ID]; ok {
			cur.Sent = h.Sent + 1
		}
	}
	return nil
}

// Snapshot encodes the state as JSON.
func (d *Dispatcher) Snapshot() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := json.Marshal(d.state)
	if err != nil {
		return nil, fmt.Errorf("webhooks snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the state with a snapshot's (nil: empty).
func (d *Dispatcher) Restore(data []byte) error {
	s := emptyState()
	if len(data) > 0 {
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("webhooks restore: %w", err)
		}
		if s.Hooks == nil {
			s.Hooks = map[hook.ID]*entry{}
		}
		if s.Assets == nil {
			s.Assets = map[string]asset{}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state = s
	return nil
}

// list returns the live hooks owner has on wallet, by id.
func (d *Dispatcher) list(wallet, owner string) []hook.Hook {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []hook.Hook{}
	for _, h := range d.state.Hooks {
		if h.Wallet == wallet && h.Owner == owner {
			out = append(out, hook.Hook{Registered: h.Registered})
		}
	}
	slices.SortFunc(out, func(x, y hook.Hook) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// live counts the live hooks owner has on wallet.
func (d *Dispatcher) live(wallet, owner string) int { return len(d.list(wallet, owner)) }
