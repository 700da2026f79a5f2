package alerts

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// Test vocabulary: alice owns a1 (BTC-USD above 64000, one-shot, email) and
// r1 (BTC-USD above 64000, re-arming with hysteresis 100 and cooldown 5m);
// b1 is alice's below-60000 one-shot alert; mallory is someone else.

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	btcusd = prices.MustPair("BTC-USD")
	ethusd = prices.MustPair("ETH-USD")
	mail1  = Channels{Email: "alice@example.com"}
	rearm  = &Rearm{Hysteresis: p("100"), Cooldown: 5 * time.Minute}

	a1 = AlertCreated{ID: "a1", Owner: "alice", Pair: btcusd, Direction: Above, Target: p("64000"), Channels: mail1, At: t0}
	r1 = AlertCreated{ID: "r1", Owner: "alice", Pair: btcusd, Direction: Above, Target: p("64000"), Channels: mail1,
		Rearm: rearm, At: t0}
	b1 = AlertCreated{ID: "b1", Owner: "alice", Pair: btcusd, Direction: Below, Target: p("60000"),
		Channels: Channels{Websocket: true}, Rearm: &Rearm{Hysteresis: p("50.5")}, At: t0}
)

func p(s string) prices.Price { return prices.MustParse(s) }

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func given(events ...Event) *Alert {
	a := New()
	for _, e := range events {
		a = Evolve(a, e)
	}
	return a
}

func tick(price string, pos uint64, min int) Trigger {
	return Trigger{Price: p(price), TickPosition: pos, At: at(min)}
}

// fired is the AlertTriggered c decides on created.
func fired(created AlertCreated, price string, pos uint64, min, seq int) AlertTriggered {
	return AlertTriggered{ID: created.ID, Owner: created.Owner, Pair: created.Pair, Direction: created.Direction,
		Target: created.Target, Price: p(price), TickPosition: pos, Seq: seq, At: at(min), Channels: created.Channels}
}

func rearmed(id ID, price string, pos uint64, min int) AlertRearmed {
	return AlertRearmed{ID: id, Price: p(price), TickPosition: pos, At: at(min)}
}

type decideCase struct {
	name  string
	given []Event
	when  Command
	then  []Event
	err   error // nil: success
}

func runCases(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := given(tc.given...)
			before := *a
			events, err := Decide(a, tc.when)
			if tc.err == nil && err != nil {
				t.Fatalf("err %v, want none", err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(events, tc.then) {
				t.Fatalf("events\n got %#v\nwant %#v", events, tc.then)
			}
			if !reflect.DeepEqual(*a, before) {
				t.Fatal("Decide changed the state")
			}
			for _, e := range events {
				Evolve(a, e)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	create := func(mod func(*Create)) Create {
		c := Create{ID: "a1", Owner: "alice", Pair: btcusd, Direction: Above, Target: p("64000"), Channels: mail1, At: t0}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	runCases(t, []decideCase{
		{"one-shot", nil, create(nil), []Event{a1}, nil},
		{"re-arming", nil, create(func(c *Create) { c.ID = "r1"; c.Rearm = rearm }), []Event{r1}, nil},
		{"below with all channels", nil, create(func(c *Create) {
			c.Direction, c.Target = Below, p("0.000001")
			c.Channels = Channels{Email: "a@b.example", Webhook: "https://hooks.example/x?y=1", Websocket: true}
		}), []Event{AlertCreated{ID: "a1", Owner: "alice", Pair: btcusd, Direction: Below, Target: p("0.000001"),
			Channels: Channels{Email: "a@b.example", Webhook: "https://hooks.example/x?y=1", Websocket: true}, At: t0}}, nil},
		{"hysteresis just below the target", nil, create(func(c *Create) { c.Rearm = &Rearm{Hysteresis: p("63999.999999999999999999")} }),
			[]Event{AlertCreated{ID: "a1", Owner: "alice", Pair: btcusd, Direction: Above, Target: p("64000"), Channels: mail1,
				Rearm: &Rearm{Hysteresis: p("63999.999999999999999999")}, At: t0}}, nil},

		{"exists", []Event{a1}, create(nil), nil, ErrExists},
		{"exists, other owner", []Event{a1}, create(func(c *Create) { c.Owner = "mallory" }), nil, ErrExists},
		{"bad id", nil, create(func(c *Create) { c.ID = "a/1" }), nil, ErrValidation},
		{"empty id", nil, create(func(c *Create) { c.ID = "" }), nil, ErrValidation},
		{"long id", nil, create(func(c *Create) { c.ID = ID(strings.Repeat("a", 65)) }), nil, ErrValidation},
		{"no owner", nil, create(func(c *Create) { c.Owner = "" }), nil, ErrValidation},
		{"owner with newline", nil, create(func(c *Create) { c.Owner = "al\nice" }), nil, ErrValidation},
		{"no pair", nil, create(func(c *Create) { c.Pair = prices.Pair{} }), nil, ErrValidation},
		{"bad direction", nil, create(func(c *Create) { c.Direction = "sideways" }), nil, ErrValidation},
		{"zero target", nil, create(func(c *Create) { c.Target = p("0") }), nil, ErrValidation},
		{"no channel", nil, create(func(c *Create) { c.Channels = Channels{} }), nil, ErrValidation},
		{"email with name", nil, create(func(c *Create) { c.Channels.Email = "Alice <alice@example.com>" }), nil, ErrValidation},
		{"email header injection", nil, create(func(c *Create) { c.Channels.Email = "a@b.example\r\nBcc: x@y.example" }), nil, ErrValidation},
		{"not an email", nil, create(func(c *Create) { c.Channels.Email = "alice" }), nil, ErrValidation},
		{"webhook ftp", nil, create(func(c *Create) { c.Channels.Webhook = "ftp://hooks.example/x" }), nil, ErrValidation},
		{"webhook relative", nil, create(func(c *Create) { c.Channels.Webhook = "/x" }), nil, ErrValidation},
		{"webhook credentials", nil, create(func(c *Create) { c.Channels.Webhook = "https://u:pw@hooks.example/x" }), nil, ErrValidation},
		{"webhook fragment", nil, create(func(c *Create) { c.Channels.Webhook = "https://hooks.example/x#" }), nil, ErrValidation},
		{"webhook space", nil, create(func(c *Create) { c.Channels.Webhook = "https://hooks.example/a b" }), nil, ErrValidation},
		{"webhook no host", nil, create(func(c *Create) { c.Channels.Webhook = "https:///x" }), nil, ErrValidation},
		{"negative cooldown", nil, create(func(c *Create) { c.Rearm = &Rearm{Cooldown: -time.Second} }), nil, ErrValidation},
		{"cooldown too long", nil, create(func(c *Create) { c.Rearm = &Rearm{Cooldown: MaxCooldown + 1} }), nil, ErrValidation},
		{"above: hysteresis equal to the target", nil, create(func(c *Create) { c.Rearm = &Rearm{Hysteresis: p("64000")} }), nil, ErrValidation},
		{"below: target plus hysteresis overflows", nil, create(func(c *Create) {
			c.Direction, c.Target, c.Rearm = Below, p("99999999999999999999"), &Rearm{Hysteresis: p("0.999999999999999999")}
		}), nil, ErrValidation},
	})
}

func TestTrigger(t *testing.T) {
	runCases(t, []decideCase{
		{"above: at the target fires, with the tick's price", []Event{a1}, tick("64000", 7, 1),
			[]Event{fired(a1, "64000", 7, 1, 1)}, nil},
		{"above: beyond the target fires with the tick's price, not the target", []Event{a1}, tick("64500.25", 7, 1),
			[]Event{fired(a1, "64500.25", 7, 1, 1)}, nil},
		{"above: exact across scales", []Event{a1}, tick("64000.000000000000000000", 7, 1),
			[]Event{fired(a1, "64000", 7, 1, 1)}, nil},
		{"above: one unit short", []Event{a1}, tick("63999.999999999999999999", 7, 1), nil, nil},
		{"below: at the target fires", []Event{b1}, tick("60000", 3, 1), []Event{fired(b1, "60000", 3, 1, 1)}, nil},
		{"below: above the target does not", []Event{b1}, tick("60000.01", 3, 1), nil, nil},
		{"pair given and matching", []Event{a1}, Trigger{Price: p("65000"), TickPosition: 7, At: at(1), Pair: btcusd},
			[]Event{fired(a1, "65000", 7, 1, 1)}, nil},

		{"replay of the firing tick: nothing", []Event{a1, fired(a1, "64001", 7, 1, 1)}, tick("64001", 7, 1), nil, nil},
		{"older tick: nothing", []Event{r1, fired(r1, "64001", 7, 1, 1), rearmed("r1", "63000", 9, 10)},
			tick("65000", 8, 2), nil, nil},
		{"one-shot stays triggered", []Event{a1, fired(a1, "64001", 7, 1, 1)}, tick("60000", 8, 100), nil, nil},
		{"one-shot fired does not fire again", []Event{a1, fired(a1, "64001", 7, 1, 1)}, tick("70000", 8, 100), nil, nil},
		{"deleted: nothing", []Event{a1, AlertDeleted{ID: "a1", By: "alice"}}, tick("70000", 8, 1), nil, nil},

		{"re-arm: back beyond hysteresis after cooldown", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("63899.99", 20, 6),
			[]Event{rearmed("r1", "63899.99", 20, 6)}, nil},
		{"re-arm: exactly at cooldown end", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("63000", 20, 6),
			[]Event{rearmed("r1", "63000", 20, 6)}, nil},
		{"no re-arm: at target minus hysteresis (strict)", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("63900", 20, 60), nil, nil},
		{"no re-arm: within hysteresis", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("63950", 20, 60), nil, nil},
		{"no re-arm: cooldown not passed", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("60000", 20, 5), nil, nil},
		{"no re-arm while beyond the target", []Event{r1, fired(r1, "64001", 7, 1, 1)}, tick("65000", 20, 60), nil, nil},
		{"re-armed fires again, seq 2", []Event{r1, fired(r1, "64001", 7, 1, 1), rearmed("r1", "63000", 20, 10)},
			tick("64000", 21, 11), []Event{fired(r1, "64000", 21, 11, 2)}, nil},
		{"below re-arms above target plus hysteresis", []Event{b1, fired(b1, "59000", 3, 1, 1)}, tick("60050.500000000000000001", 4, 1),
			[]Event{rearmed("b1", "60050.500000000000000001", 4, 1)}, nil},
		{"below: not at target plus hysteresis", []Event{b1, fired(b1, "59000", 3, 1, 1)}, tick("60050.5", 4, 1), nil, nil},

		{"missing alert", nil, tick("1", 1, 1), nil, ErrNotFound},
		{"position 0", []Event{a1}, tick("70000", 0, 1), nil, ErrValidation},
		{"no time", []Event{a1}, Trigger{Price: p("70000"), TickPosition: 3}, nil, ErrValidation},
		{"tick of another pair", []Event{a1}, Trigger{Price: p("70000"), TickPosition: 3, At: at(1), Pair: ethusd}, nil, ErrValidation},
	})
}

func TestDelete(t *testing.T) {
	runCases(t, []decideCase{
		{"owner deletes", []Event{a1}, Delete{By: "alice", At: at(3)}, []Event{AlertDeleted{ID: "a1", By: "alice", At: at(3)}}, nil},
		{"owner deletes a triggered alert", []Event{a1, fired(a1, "64001", 7, 1, 1)}, Delete{By: "alice"},
			[]Event{AlertDeleted{ID: "a1", By: "alice"}}, nil},
		{"deleted again: nothing", []Event{a1, AlertDeleted{ID: "a1", By: "alice"}}, Delete{By: "alice"}, nil, nil},
		{"someone else: not found", []Event{a1}, Delete{By: "mallory"}, nil, ErrNotFound},
		{"anonymous: not found", []Event{a1}, Delete{By: ""}, nil, ErrNotFound},
		{"missing: not found", nil, Delete{By: "alice"}, nil, ErrNotFound},
	})
}

// TestNoOracle: a stranger cannot tell someone else's alert from a missing
// one, not even by the error text.
func TestNoOracle(t *testing.T) {
	_, errTheirs := Decide(given(a1), Delete{By: "mallory"})
	_, errMissing := Decide(New(), Delete{By: "mallory"})
	if !errors.Is(errTheirs, ErrNotFound) || errTheirs.Error() != errMissing.Error() {
		t.Fatalf("errors differ: %q vs %q", errTheirs, errMissing)
	}
	if given(a1).VisibleTo("mallory") || !given(a1).VisibleTo("alice") || New().VisibleTo("") {
		t.Fatal("VisibleTo")
	}
}

// scenario feeds prices one tick a minute (positions from 1) to a fresh
// alert and returns its events.
func scenario(t *testing.T, created AlertCreated, ticks ...string) []Event {
	t.Helper()
	a := given(created)
	var out []Event
	for i, price := range ticks {
		events, err := Execute(a, tick(price, uint64(i+1), i+1))
		if err != nil {
			t.Fatal(err)
		}
		// Every tick is delivered twice: replays change nothing.
		if again, err := Execute(a, tick(price, uint64(i+1), i+1)); err != nil || len(again) != 0 {
			t.Fatalf("replay of tick %d: %v, %v", i+1, again, err)
		}
		out = append(out, events...)
	}
	return out
}

// TestOscillation: a price oscillating around the target fires once; the
// re-arming alert fires again only after the price has gone back beyond
// the hysteresis and the cooldown has passed.
func TestOscillation(t *testing.T) {
	// Minute 1..12: around 64000, within the hysteresis of 100.
	oscillate := []string{"63990", "64001", "63999", "64002", "63950", "64010", "63901", "64000", "63900", "64050", "63920", "64000.01"}

	if got := scenario(t, a1, oscillate...); !reflect.DeepEqual(got, []Event{fired(a1, "64001", 2, 2, 1)}) {
		t.Fatalf("one-shot: %v", got)
	}
	if got := scenario(t, r1, oscillate...); !reflect.DeepEqual(got, []Event{fired(r1, "64001", 2, 2, 1)}) {
		t.Fatalf("re-arming within hysteresis: %v", got)
	}
	// Minute 3: a dip beyond the hysteresis inside the cooldown (fired at
	// minute 2, cooldown 5m) does not re-arm; minute 8 does; minute 9
	// fires again; then oscillation again fires nothing more.
	ticks := []string{"63990", "64001", "63000", "64100", "63500", "64200", "64300", "63899", "64000", "63950", "64001", "63999"}
	want := []Event{fired(r1, "64001", 2, 2, 1), rearmed("r1", "63899", 8, 8), fired(r1, "64000", 9, 9, 2)}
	if got := scenario(t, r1, ticks...); !reflect.DeepEqual(got, want) {
		t.Fatalf("re-arming:\n got %v\nwant %v", got, want)
	}
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name  string
		given []Event
		want  Entry
		ok    bool
	}{
		{"missing", nil, Entry{}, false},
		{"armed", []Event{r1}, Entry{ID: "r1", Pair: btcusd, Direction: Above, Target: p("64000")}, true},
		{"fired re-arming above", []Event{r1, fired(r1, "64001", 7, 1, 1)},
			Entry{ID: "r1", Pair: btcusd, Direction: Below, Target: p("63899.999999999999999999")}, true},
		{"fired re-arming below", []Event{b1, fired(b1, "1", 7, 1, 1)},
			Entry{ID: "b1", Pair: btcusd, Direction: Above, Target: p("60050.500000000000000001")}, true},
		{"re-armed", []Event{r1, fired(r1, "64001", 7, 1, 1), rearmed("r1", "1", 8, 9)},
			Entry{ID: "r1", Pair: btcusd, Direction: Above, Target: p("64000")}, true},
		{"fired one-shot", []Event{a1, fired(a1, "64001", 7, 1, 1)}, Entry{}, false},
		{"deleted", []Event{r1, AlertDeleted{ID: "r1", By: "alice"}}, Entry{}, false},
	}
	for _, tt := range tests {
		got, ok := given(tt.given...).Watch()
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: Watch = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStatusAndState(t *testing.T) {
	a := given(r1, fired(r1, "64001", 7, 1, 1))
	if a.Status != StatusTriggered || a.Fired != 1 || a.LastPrice != p("64001") || a.LastTick != 7 || a.Armed() {
		t.Fatalf("after trigger: %+v", a)
	}
	Evolve(a, rearmed("r1", "63000", 9, 10))
	if a.Status != StatusRearmed || !a.Armed() || a.LastTick != 9 {
		t.Fatalf("after re-arm: %+v", a)
	}
	Evolve(a, AlertDeleted{ID: "r1", By: "alice", At: at(20)})
	if a.Status != StatusDeleted || a.Armed() || !a.Exists() || !a.DeletedAt.Equal(at(20)) {
		t.Fatalf("after delete: %+v", a)
	}
	if ID("r1").Stream() != "alert-r1" {
		t.Fatal("stream name")
	}
	if _, err := Decide(New(), nil); !errors.Is(err, ErrValidation) {
		t.Fatalf("nil command: %v", err)
	}
	// The state does not share the Rearm of the event it came from.
	e := r1
	e.Rearm = &Rearm{Cooldown: time.Minute}
	s := given(e)
	e.Rearm.Cooldown = time.Hour
	if s.Rearm.Cooldown != time.Minute {
		t.Fatal("state aliases the event's Rearm")
	}
}

func TestEventJSON(t *testing.T) {
	types := map[string]bool{}
	for _, e := range Events() {
		if !strings.HasPrefix(e.EventType(), "alerts.") || types[e.EventType()] {
			t.Fatalf("event type %q", e.EventType())
		}
		types[e.EventType()] = true
	}
	for _, e := range []Event{r1, a1, fired(r1, "64001.5", 7, 1, 1), rearmed("r1", "63000", 9, 10),
		AlertDeleted{ID: "r1", By: "alice", At: at(2)}} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(e))
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Elem().Interface(), e) {
			t.Fatalf("round trip of %s:\n got %#v\nwant %#v", b, back.Elem().Interface(), e)
		}
	}
	b, _ := json.Marshal(fired(r1, "64001.5", 7, 1, 1))
	if !strings.Contains(string(b), `"price":"64001.5"`) || !strings.Contains(string(b), `"target":"64000"`) {
		t.Fatalf("triggered JSON: %s", b)
	}
}
