package prices

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Event type names as stored in the event store. Never rename one.
const (
	TypePriceTicked = "prices.ticked"
)

// ErrValidation is wrapped by every error Tick returns.
var ErrValidation = errors.New("validation failed")

// Limits of a price stream's state. See State for the policy they bound.
const (
	// WindowPerSource is the number of recent tick times remembered per
	// source for deduplication.
	WindowPerSource = 64
	// MaxSources is the number of sources a stream remembers; the source
	// that ticked least recently is forgotten first.
	MaxSources = 32
	// CoalesceWithin: a tick that repeats its source's latest price is
	// dropped unless at least this long has passed since that source's
	// latest recorded tick, so a flat market still records one tick per
	// source per CoalesceWithin (the read models see the price is fresh).
	CoalesceWithin = time.Minute
	// MaxSourceLen bounds source names, in bytes (see ValidSource).
	MaxSourceLen = 64
	// MaxAhead is how far a tick's time may lie ahead of the recorder's
	// clock (RecordTick.Now): clocks drift, but a tick from further in the
	// future would stay the "latest" price until that time comes.
	MaxAhead = 5 * time.Minute
)

// Event is a fact of a price stream.
type Event interface{ EventType() string }

// PriceTicked: Source reported Price for Pair at At.
type PriceTicked struct {
	Pair   Pair      `json:"pair"`
	Price  Price     `json:"price"`
	Source string    `json:"source"`
	At     time.Time `json:"at"`
}

func (PriceTicked) EventType() string { return TypePriceTicked }

// Events returns one value of each event type, for codecs.
func Events() []Event { return []Event{PriceTicked{}} }

// RecordTick is a price a source reports for the stream's pair. Source
// names the feed ("coingecko", "binance", "push:alice"): 1 to 64 bytes of
// printable ASCII without spaces. Price must be positive (a zero price is a
// broken feed). At is the time the source gives for the price, not the time
// it arrived; it is part of the deduplication key. Now is the recorder's
// clock when it decides, required: At may be at most MaxAhead after it.
type RecordTick struct {
	Source string
	Price  Price
	At     time.Time
	Now    time.Time
}

// State is the state of one price stream (price-<BASE>-<QUOTE>). Make it
// with NewState and Evolve every event of the stream into it.
//
// Deduplication: a tick is keyed by (source, pair, at); the pair is the
// stream's. The state remembers, per source, the times of its last
// WindowPerSource recorded ticks and a horizon, the newest time that has
// left that window. A tick is dropped (Tick decides no events) when its
// time is in the window, or is not after the horizon: the state can no
// longer tell whether such an old tick was recorded, so it errs on the side
// of never recording a tick twice. Late ticks newer than the horizon are
// recorded. At most MaxSources sources are remembered; when a new one
// pushes the count over, the one whose newest tick is oldest is forgotten
// and its newest time raises the stream horizon, which applies to every
// source the state does not remember. So the state is bounded (MaxSources ×
// WindowPerSource times) and no tick is ever recorded twice.
//
// Coalescing: a tick with the same price as its source's recorded tick just
// before it (in time), less than CoalesceWithin after it, is dropped. It
// carries no news; at least one tick per source per CoalesceWithin is still
// recorded while the price stands still. A coalesced tick leaves no trace,
// so a redelivery of it (a durable bus delivers at least once) is decided
// again; as the decision looks only at the ticks before it, ticks recorded
// since with later times do not change it: the redelivery is dropped again.
// Only a late tick recorded meanwhile between the two can, which is news.
// The tick just before is remembered even once it has left the window (the
// horizon keeps its price), not once its source is forgotten: a redelivered
// coalesced tick of a forgotten source, newer than the stream horizon, is
// recorded (once).
type State struct {
	pair    Pair
	ticks   uint64
	latest  PriceTicked // the recorded tick with the newest At
	sources map[string]*source
	horizon time.Time // newest tick time of a forgotten source
}

// source is what a State remembers of one source.
type source struct {
	times   []time.Time // ring of recent tick times, len <= WindowPerSource
	next    int         // where the next time goes once times is full
	prices  []Price     // prices[i] is the price of the tick at times[i]
	horizon time.Time   // newest time that has left times
	// horizonPrice is the price of the tick at horizon, if that tick was
	// this source's (not the stream horizon it started from).
	horizonPrice  Price
	horizonPriced bool
	newest        time.Time // newest recorded tick time
}

// NewState returns the state of the price stream of pair, with no events.
func NewState(pair Pair) *State { return &State{pair: pair, sources: map[string]*source{}} }

// Pair returns the stream's pair.
func (s *State) Pair() Pair { return s.pair }

// Ticks returns the number of ticks recorded.
func (s *State) Ticks() uint64 { return s.ticks }

// Latest returns the recorded tick with the newest time, if any.
func (s *State) Latest() (PriceTicked, bool) { return s.latest, s.ticks > 0 }

// Evolve applies e to s and returns it; it changes s in place.
func Evolve(s *State, e Event) *State {
	t, ok := e.(PriceTicked)
	if !ok {
		return s
	}
	if s.sources == nil {
		s.sources = map[string]*source{}
	}
	if s.pair.IsZero() {
		s.pair = t.Pair
	}
	s.ticks++
	if s.ticks == 1 || t.At.After(s.latest.At) {
		s.latest = t
	}
	src := s.sources[t.Source]
	if src == nil {
		// A source seen before it was forgotten must not get its old
		// ticks recorded again: it starts at the stream horizon.
		src = &source{times: make([]time.Time, 0, 8), prices: make([]Price, 0, 8), horizon: s.horizon}
		s.sources[t.Source] = src
		s.forgetSources(t.Source)
	}
	if len(src.times) < WindowPerSource {
		src.times = append(src.times, t.At)
		src.prices = append(src.prices, t.Price)
	} else {
		if old := src.times[src.next]; old.After(src.horizon) {
			src.horizon, src.horizonPrice, src.horizonPriced = old, src.prices[src.next], true
		}
		src.times[src.next], src.prices[src.next] = t.At, t.Price
		src.next = (src.next + 1) % WindowPerSource
	}
	if len(src.times) == 1 || t.At.After(src.newest) {
		src.newest = t.At
	}
	return s
}

// forgetSources drops sources beyond MaxSources, oldest newest tick first
// (ties: smallest name), never keep.
func (s *State) forgetSources(keep string) {
	for len(s.sources) > MaxSources {
		var victim string
		var v *source
		for name, src := range s.sources {
			if name == keep {
				continue
			}
			if v == nil || src.newest.Before(v.newest) || (src.newest.Equal(v.newest) && name < victim) {
				victim, v = name, src
			}
		}
		delete(s.sources, victim)
		if v.newest.After(s.horizon) {
			s.horizon = v.newest
		}
	}
}

// Tick decides whether c is recorded: one PriceTicked, or no events when c
// is a duplicate, too old to deduplicate, or coalesced (see State). Errors
// wrap ErrValidation.
func Tick(s *State, c RecordTick) ([]Event, error) {
	if s == nil || s.pair.IsZero() {
		return nil, fmt.Errorf("prices: tick: %w: state has no pair (use NewState)", ErrValidation)
	}
	op := "prices: tick " + s.pair.String()
	if !ValidSource(c.Source) {
		return nil, fmt.Errorf("%s: %w: source %q: want 1 to %d bytes of printable ASCII without spaces", op, ErrValidation, clip(c.Source), MaxSourceLen)
	}
	if c.Price.IsZero() {
		return nil, fmt.Errorf("%s from %s: %w: zero price", op, c.Source, ErrValidation)
	}
	if c.At.IsZero() {
		return nil, fmt.Errorf("%s from %s: %w: no time", op, c.Source, ErrValidation)
	}
	if c.Now.IsZero() {
		return nil, fmt.Errorf("%s from %s: %w: no clock reading (Now)", op, c.Source, ErrValidation)
	}
	if ahead := c.At.Sub(c.Now); ahead > MaxAhead {
		return nil, fmt.Errorf("%s from %s: %w: time %s is %s in the future, more than %s", op, c.Source, ErrValidation,
			c.At.UTC().Format(time.RFC3339), ahead.Round(time.Second), MaxAhead)
	}
	if s.seen(c.Source, c.At) {
		return nil, nil
	}
	if src := s.sources[c.Source]; src != nil {
		if at, price, ok := src.before(c.At); ok && price == c.Price && c.At.Sub(at) < CoalesceWithin {
			return nil, nil
		}
	}
	return []Event{PriceTicked{Pair: s.pair, Price: c.Price, Source: c.Source, At: c.At}}, nil
}

// before returns the time and price of the source's recorded tick just
// before t, if it is remembered: the newest of the window's times before t
// and the horizon.
func (src *source) before(t time.Time) (time.Time, Price, bool) {
	var at time.Time
	var price Price
	ok := false
	if src.horizonPriced && src.horizon.Before(t) {
		at, price, ok = src.horizon, src.horizonPrice, true
	}
	for i, x := range src.times {
		if x.Before(t) && (!ok || x.After(at)) {
			at, price, ok = x, src.prices[i], true
		}
	}
	return at, price, ok
}

// seen reports whether a tick of source at t is a duplicate or too old to
// tell.
func (s *State) seen(name string, t time.Time) bool {
	src := s.sources[name]
	if src == nil {
		return !t.After(s.horizon)
	}
	if !t.After(src.horizon) {
		return true
	}
	return slices.ContainsFunc(src.times, t.Equal)
}

// ValidSource reports whether s may name a price source: 1 to
// MaxSourceLen bytes of printable ASCII without spaces.
func ValidSource(s string) bool {
	if s == "" || len(s) > MaxSourceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
