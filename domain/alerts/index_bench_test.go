package alerts

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// The benchmark market: 1,000,000 armed alerts on BTC-USD around a price of
// 60000.00: half Above with targets in (60000, 70000], half Below with
// targets in [50000, 60000), at cent resolution. A tick at 60000 crosses
// none; a tick at the 10th smallest Above target crosses about 10.
const (
	benchAlerts = 1_000_000
	benchMid    = 6_000_000 // cents
)

type benchMarket struct {
	index   *Index
	linear  []Entry // the same alerts, for the linear scan
	entries []Entry
	quiet   prices.Price // crosses none
	busy    prices.Price // crosses about 10
}

var (
	marketOnce sync.Once
	market     benchMarket
)

func cents(c int) prices.Price {
	v, err := prices.New(uint64(c), 2)
	if err != nil {
		panic(err)
	}
	return v
}

func loadMarket(b *testing.B) *benchMarket {
	b.Helper()
	marketOnce.Do(func() {
		rng := rand.New(rand.NewPCG(42, 42))
		m := &market
		m.entries = make([]Entry, benchAlerts)
		var above []prices.Price
		for i := range m.entries {
			e := Entry{ID: ID(fmt.Sprintf("alert-%07d", i)), Pair: btcusd}
			off := 1 + rng.IntN(1_000_000) // 0.01 .. 10000.00
			if i%2 == 0 {
				e.Direction, e.Target = Above, cents(benchMid+off)
				above = append(above, e.Target)
			} else {
				e.Direction, e.Target = Below, cents(benchMid-off)
			}
			m.entries[i] = e
		}
		m.index = NewIndex()
		for _, e := range m.entries {
			if err := m.index.Add(e); err != nil {
				panic(err)
			}
		}
		m.linear = slices.Clone(m.entries)
		slices.SortFunc(above, func(a, b prices.Price) int { return a.Cmp(b) })
		m.quiet, m.busy = cents(benchMid), above[9]
	})
	return &market
}

// linearCrossed is the baseline: one pass over every alert of the pair.
func linearCrossed(dst []ID, entries []Entry, price prices.Price) []ID {
	for i := range entries {
		e := &entries[i]
		if e.Direction == Above {
			if !price.Less(e.Target) {
				dst = append(dst, e.ID)
			}
		} else if !e.Target.Less(price) {
			dst = append(dst, e.ID)
		}
	}
	return dst
}

// BenchmarkTick measures the evaluation of one tick against 1,000,000
// alerts with the index and with a linear scan, in the same run, and
// reports both per tick (index-ns/tick, linear-ns/tick), their ratio, and
// how many alerts the tick crossed. Every index evaluation is checked
// against the linear one.
func BenchmarkTick(b *testing.B) {
	m := loadMarket(b)
	for _, tc := range []struct {
		name  string
		price prices.Price
	}{{"triggers=0", m.quiet}, {"triggers=10", m.busy}} {
		b.Run(tc.name, func(b *testing.B) {
			want := linearCrossed(nil, m.linear, tc.price)
			got := m.index.Crossed(btcusd, tc.price)
			if !slices.Equal(sorted(got), sorted(want)) {
				b.Fatalf("index crossed %d, linear %d", len(got), len(want))
			}
			const rounds = 1000 // index evaluations per linear one
			buf := make([]ID, 0, 64)
			var idx, lin time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				for range rounds {
					buf = m.index.AppendCrossed(buf[:0], btcusd, tc.price)
				}
				mid := time.Now()
				buf = linearCrossed(buf[:0], m.linear, tc.price)
				idx, lin = idx+mid.Sub(start), lin+time.Since(mid)
			}
			b.StopTimer()
			idxNs := float64(idx.Nanoseconds()) / float64(b.N*rounds)
			linNs := float64(lin.Nanoseconds()) / float64(b.N)
			b.ReportMetric(idxNs, "index-ns/tick")
			b.ReportMetric(linNs, "linear-ns/tick")
			b.ReportMetric(linNs/idxNs, "speedup")
			b.ReportMetric(float64(len(want)), "triggered/tick")
		})
	}
}

// BenchmarkCrossed reports ns/op of each method alone, for benchstat.
func BenchmarkCrossed(b *testing.B) {
	m := loadMarket(b)
	for _, tc := range []struct {
		name  string
		price prices.Price
	}{{"triggers=0", m.quiet}, {"triggers=10", m.busy}} {
		buf := make([]ID, 0, 64)
		b.Run(tc.name+"/index", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf = m.index.AppendCrossed(buf[:0], btcusd, tc.price)
			}
			b.ReportMetric(float64(len(buf)), "triggered/op")
		})
		b.Run(tc.name+"/index-alloc", func(b *testing.B) {
			b.ReportAllocs()
			var ids []ID
			for i := 0; i < b.N; i++ {
				ids = m.index.Crossed(btcusd, tc.price)
			}
			b.ReportMetric(float64(len(ids)), "triggered/op")
		})
		b.Run(tc.name+"/linear", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf = linearCrossed(buf[:0], m.linear, tc.price)
			}
			b.ReportMetric(float64(len(buf)), "triggered/op")
		})
	}
}

// BenchmarkUpdate moves one alert to a new target at 1,000,000 alerts
// (a Remove and an Add, as the engine does after a trigger or re-arm).
func BenchmarkUpdate(b *testing.B) {
	m := loadMarket(b)
	rng := rand.New(rand.NewPCG(7, 7))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := m.entries[rng.IntN(len(m.entries))]
		e.Target = cents(benchMid + 1 + rng.IntN(1_000_000))
		if e.Direction == Below {
			e.Target = cents(benchMid - 1 - rng.IntN(1_000_000))
		}
		if err := m.index.Add(e); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// Put the market back as it was for the other benchmarks.
	if err := m.index.Rebuild(m.entries); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRebuild bulk-loads 1,000,000 alerts.
func BenchmarkRebuild(b *testing.B) {
	m := loadMarket(b)
	x := NewIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := x.Rebuild(m.entries); err != nil {
			b.Fatal(err)
		}
	}
}
