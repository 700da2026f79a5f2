package prices

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var (
	btcusd = MustPair("BTC-USD")
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func ticked(src, price string, at time.Time) PriceTicked {
	return PriceTicked{Pair: btcusd, Price: MustParse(price), Source: src, At: at}
}

// record is a tick decided at its own time.
func record(src, price string, at time.Time) RecordTick {
	return RecordTick{Source: src, Price: MustParse(price), At: at, Now: at}
}

// recordAt is a tick decided when the recorder's clock reads now.
func recordAt(src, price string, at, now time.Time) RecordTick {
	return RecordTick{Source: src, Price: MustParse(price), At: at, Now: now}
}

func givenTicks(events ...Event) *State {
	s := NewState(btcusd)
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

func TestPair(t *testing.T) {
	good := map[string]string{"BTC-USD": "BTC-USD", "btc-usd": "BTC-USD", "1INCH-USDT": "1INCH-USDT", "X-Y": "X-Y",
		"ABCDEFGHIJKL-EUR": "ABCDEFGHIJKL-EUR"}
	for in, want := range good {
		p, err := ParsePair(in)
		if err != nil || p.String() != want || p.Stream() != "price-"+want {
			t.Errorf("ParsePair(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "BTC", "BTC-", "-USD", "BTC-USD-EUR", "BTC_USD", "BTC/USD", "BTC-BTC", "btc-BTC",
		"ABCDEFGHIJKLM-USD", "BT C-USD", "BTÇ-USD", "BTC-US$"} {
		if p, err := ParsePair(in); !errors.Is(err, ErrInvalidPair) {
			t.Errorf("ParsePair(%q) = %v, %v; want ErrInvalidPair", in, p, err)
		}
	}
	if p, err := PairFromStream("price-DOGE-BTC"); err != nil || p != MustPair("DOGE-BTC") || p.Base() != "DOGE" || p.Quote() != "BTC" {
		t.Errorf("PairFromStream = %v, %v", p, err)
	}
	for _, in := range []string{"price-doge-btc", "alert-DOGE-BTC", "price-DOGE", "DOGE-BTC"} {
		if _, err := PairFromStream(in); !errors.Is(err, ErrInvalidPair) {
			t.Errorf("PairFromStream(%q): err %v, want ErrInvalidPair", in, err)
		}
	}
	b, err := json.Marshal(btcusd)
	var back Pair
	if err != nil || string(b) != `"BTC-USD"` || json.Unmarshal([]byte(`"eth-btc"`), &back) != nil || back != MustPair("ETH-BTC") {
		t.Errorf("pair JSON: %s, %v, %v", b, err, back)
	}
	if _, err := json.Marshal(Pair{}); err == nil {
		t.Error("zero pair marshals")
	}
}

func TestTick(t *testing.T) {
	type tc struct {
		name  string
		given []Event
		when  RecordTick
		then  []Event
		err   error
	}
	// window fills source "a" with WindowPerSource ticks at seconds 1.. and
	// alternating prices, pushing second 0 out of the window.
	window := []Event{ticked("a", "100", sec(0))}
	for i := 1; i <= WindowPerSource; i++ {
		window = append(window, ticked("a", fmt.Sprint(100+i%2), sec(i)))
	}
	// crowd: MaxSources+1 sources, s0 ticking oldest, so s0 is forgotten.
	var crowd []Event
	for i := 0; i <= MaxSources; i++ {
		crowd = append(crowd, ticked(fmt.Sprintf("s%d", i), "100", sec(10+i)))
	}
	// gone: a's tick at 0 has left the window, pushed out by later ticks.
	gone := []Event{ticked("a", "100", sec(0))}
	for i := range WindowPerSource {
		gone = append(gone, ticked("a", "101", sec(100+i)))
	}
	tests := []tc{
		{"first tick", nil, record("coingecko", "64000.12", sec(0)),
			[]Event{ticked("coingecko", "64000.12", sec(0))}, nil},
		{"exact duplicate dropped", []Event{ticked("a", "100", sec(0))}, record("a", "100", sec(0)), nil, nil},
		{"duplicate key with another price dropped", []Event{ticked("a", "100", sec(0))}, record("a", "101", sec(0)), nil, nil},
		{"same time in another time zone is a duplicate", []Event{ticked("a", "100", sec(0))},
			record("a", "100", sec(0).In(time.FixedZone("X", 3600))), nil, nil},
		{"same time from another source recorded", []Event{ticked("a", "100", sec(0))}, record("b", "100", sec(0)),
			[]Event{ticked("b", "100", sec(0))}, nil},
		{"new price recorded", []Event{ticked("a", "100", sec(0))}, record("a", "100.01", sec(1)),
			[]Event{ticked("a", "100.01", sec(1))}, nil},
		{"same price within CoalesceWithin coalesced", []Event{ticked("a", "100", sec(0))}, record("a", "100.000", sec(59)), nil, nil},
		{"same price after CoalesceWithin recorded", []Event{ticked("a", "100", sec(0))}, record("a", "100", sec(60)),
			[]Event{ticked("a", "100", sec(60))}, nil},
		{"same price from another source recorded", []Event{ticked("a", "100", sec(0))}, record("b", "100", sec(1)),
			[]Event{ticked("b", "100", sec(1))}, nil},
		{"late tick inside the window recorded", []Event{ticked("a", "100", sec(0)), ticked("a", "102", sec(10))},
			record("a", "101", sec(5)), []Event{ticked("a", "101", sec(5))}, nil},
		{"late tick with the newest price is not coalesced", []Event{ticked("a", "100", sec(0)), ticked("a", "102", sec(10))},
			record("a", "102", sec(5)), []Event{ticked("a", "102", sec(5))}, nil},
		{"redelivered coalesced tick stays coalesced after a newer tick", []Event{ticked("a", "100", sec(0)), ticked("a", "102", sec(30))},
			record("a", "100", sec(10)), nil, nil},
		{"late tick with another price just before recorded", []Event{ticked("a", "100", sec(0)), ticked("a", "101", sec(5)), ticked("a", "102", sec(30))},
			record("a", "100", sec(10)), []Event{ticked("a", "100", sec(10))}, nil},
		{"tick just before out of the window still coalesces", gone, record("a", "100", sec(30)), nil, nil},
		{"tick just before out of the window, another price", gone, record("a", "102", sec(30)),
			[]Event{ticked("a", "102", sec(30))}, nil},
		{"duplicate still in the window dropped", window, record("a", "101", sec(1)), nil, nil},
		{"duplicate that left the window dropped (horizon)", window, record("a", "100", sec(0)), nil, nil},
		{"older than the horizon dropped", window, record("a", "99", sec(-5)), nil, nil},
		{"newer than the window recorded", window, record("a", "105", sec(WindowPerSource+1)),
			[]Event{ticked("a", "105", sec(WindowPerSource+1))}, nil},
		{"forgotten source: its old tick dropped", crowd, record("s0", "100", sec(10)), nil, nil},
		{"forgotten source: a newer tick recorded", crowd, record("s0", "101", sec(11)),
			[]Event{ticked("s0", "101", sec(11))}, nil},
		{"unknown source before the stream horizon dropped", crowd, record("zz", "1", sec(10)), nil, nil},
		{"remembered sources unaffected by the stream horizon", crowd, record("s1", "99", sec(5)),
			[]Event{ticked("s1", "99", sec(5))}, nil},

		{"empty source", nil, record("", "1", sec(0)), nil, ErrValidation},
		{"source with a space", nil, record("co gecko", "1", sec(0)), nil, ErrValidation},
		{"source too long", nil, record(string(make([]byte, 65)), "1", sec(0)), nil, ErrValidation},
		{"zero price", nil, record("a", "0", sec(0)), nil, ErrValidation},
		{"no time", nil, RecordTick{Source: "a", Price: MustParse("1"), Now: sec(0)}, nil, ErrValidation},
		{"no clock reading", nil, RecordTick{Source: "a", Price: MustParse("1"), At: sec(0)}, nil, ErrValidation},
		{"more than MaxAhead in the future", nil, recordAt("a", "1", sec(0).Add(MaxAhead+time.Second), sec(0)), nil, ErrValidation},
		{"far in the future", nil, recordAt("a", "1", sec(0).AddDate(10, 0, 0), sec(0)), nil, ErrValidation},
		{"MaxAhead in the future recorded", nil, recordAt("a", "1", sec(0).Add(MaxAhead), sec(0)),
			[]Event{ticked("a", "1", sec(0).Add(MaxAhead))}, nil},
		{"in the past recorded", nil, recordAt("a", "1", sec(0), sec(0).AddDate(0, 0, 1)),
			[]Event{ticked("a", "1", sec(0))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := givenTicks(tt.given...)
			events, err := Tick(s, tt.when)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if !reflect.DeepEqual(events, tt.then) {
				t.Fatalf("events\n got %v\nwant %v", events, tt.then)
			}
		})
	}
	if _, err := Tick(&State{}, record("a", "1", sec(0))); !errors.Is(err, ErrValidation) {
		t.Errorf("tick on a state without pair: %v", err)
	}
}

// TestTickReplay feeds a stream of ticks with many redeliveries, out of
// order, from more sources than the state remembers, and checks that no
// (source, at) is ever recorded twice and that every first delivery of a
// tick newer than all before it from its source is either recorded or
// coalesced.
func TestTickReplay(t *testing.T) {
	s := NewState(btcusd)
	recorded := map[string]bool{}
	rng := uint64(1)
	next := func(n int) int { rng = rng*6364136223846793005 + 1442695040888963407; return int(rng>>33) % n }
	var sent []RecordTick
	// firstRecorded: (source, at) → recorded at its first delivery, while
	// the source was in its generation firstGen. A forgotten source's
	// ticks are checked no more (see State): neither while it is forgotten
	// nor once it is seen again (a new generation).
	firstRecorded, firstGen, gen := map[string]bool{}, map[string]int{}, map[string]int{}
	remembered := map[*source]bool{}
	for i := 0; i < 20000; i++ {
		var c RecordTick
		redelivery := len(sent) > 0 && next(3) == 0
		if redelivery {
			c = sent[len(sent)-1-next(min(len(sent), 300))] // redelivery, possibly long after
		} else {
			c = record(fmt.Sprintf("src%d", next(MaxSources+8)), fmt.Sprint(100+next(3)), sec(i))
			sent = append(sent, c)
		}
		known := s.sources[c.Source] != nil
		events, err := Tick(s, c)
		if err != nil {
			t.Fatal(err)
		}
		key := c.Source + "@" + c.At.String()
		if !redelivery {
			firstRecorded[key], firstGen[key] = len(events) > 0, gen[c.Source]
		} else if !firstRecorded[key] && len(events) > 0 && known && firstGen[key] == gen[c.Source] {
			// Ticks arrive in time order here: nothing recorded since its
			// first delivery can change the decision on it.
			t.Fatalf("tick %s dropped at its first delivery, recorded at a redelivery", key)
		}
		for _, e := range events {
			e := e.(PriceTicked)
			key := e.Source + "@" + e.At.String()
			if recorded[key] {
				t.Fatalf("tick %s recorded twice", key)
			}
			recorded[key] = true
			Evolve(s, e)
		}
		for name, src := range s.sources {
			if !remembered[src] {
				remembered[src] = true
				gen[name]++
			}
		}
	}
	if s.Ticks() != uint64(len(recorded)) || len(s.sources) > MaxSources {
		t.Fatalf("ticks %d, recorded %d, sources %d", s.Ticks(), len(recorded), len(s.sources))
	}
	for _, src := range s.sources {
		if len(src.times) > WindowPerSource {
			t.Fatalf("window grew to %d", len(src.times))
		}
	}
	if len(recorded) < 1000 {
		t.Fatalf("only %d ticks recorded: the policy drops too much", len(recorded))
	}
	if l, ok := s.Latest(); !ok || l.At.Before(sec(19000)) {
		t.Fatalf("latest %v", l)
	}
}

func TestPriceTickedJSON(t *testing.T) {
	e := ticked("binance", "64000.12", sec(0))
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"pair":"BTC-USD","price":"64000.12","source":"binance","at":"2026-03-01T12:00:00Z"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var back PriceTicked
	if err := json.Unmarshal(b, &back); err != nil || back != e {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	if e.EventType() != "prices.ticked" || len(Events()) != 1 {
		t.Fatal("event type")
	}
}
