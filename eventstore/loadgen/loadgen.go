// Package loadgen drives load for benchmarks (go test -bench and
// coinledger bench): an event store directly, or any operation closed-loop
// (Closed) or open-loop at a constant arrival rate (Open). It holds no test
// code.
package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

// LoadResult is what a load run measured.
type LoadResult struct {
	Appends  int
	Events   int
	Elapsed  time.Duration
	P50, P99 time.Duration // append latency
}

// EventsPerSec is the acknowledged event rate.
func (r LoadResult) EventsPerSec() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// AppendLoad runs appenders goroutines, each appending batch events at a time
// to its own stream (streams distinct per run), until total events were
// acknowledged. Every append must succeed.
func AppendLoad(ctx context.Context, s eventstore.Store, appenders, batch, total int) (LoadResult, error) {
	prefix := "load-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	data := json.RawMessage(`{"account":"acct-000001","amount":150000,"memo":"benchmark transfer"}`)
	per := total / appenders / batch
	events := make([][]eventstore.EventData, appenders)
	for w := range events {
		events[w] = make([]eventstore.EventData, batch)
		for i := range events[w] {
			events[w][i] = eventstore.EventData{Type: "bench.credited", Data: data}
		}
	}
	lat, elapsed, err := Closed(appenders, appenders*per, func(w, i int) error {
		k := i / appenders // this appender's k-th append
		_, err := s.Append(ctx, fmt.Sprintf("%s-%d", prefix, w), eventstore.ExpectRevision(uint64(k*batch)), events[w]...)
		if err != nil {
			return fmt.Errorf("appender %d: %w", w, err)
		}
		return nil
	})
	if err != nil {
		return LoadResult{}, err
	}
	slices.Sort(lat)
	return LoadResult{Appends: len(lat), Events: len(lat) * batch, Elapsed: elapsed,
		P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
}

// Closed runs n operations from workers closed-loop workers: worker w runs
// operations w, w+workers, w+2*workers, ..., each once its previous one
// ended. It returns every operation's latency (in no order) and how long
// the run took. A failing operation stops its worker; the first error is
// returned.
func Closed(workers, n int, op func(worker, i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([][]time.Duration, workers)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			lat[w] = make([]time.Duration, 0, n/workers+1)
			for i := w; i < n; i += workers {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errc <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	return slices.Concat(lat...), elapsed, <-errc
}

// Open runs n operations open-loop at a constant arrival rate: operation i
// is due at start + i/rate whether or not earlier ones have answered, and
// runs in its own goroutine. Its latency is measured from when it was due,
// not from when it was sent, so a server that falls behind shows its
// queueing in the latency (no coordinated omission). It returns every
// operation's latency (in no order) and how long the run took, from the
// start to the last answer. Operations go on after one fails; the first
// error is returned.
func Open(rate float64, n int, op func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < n; {
		// Start every operation due by now, then sleep until the next one
		// is due: sleeping per operation would drift at high rates.
		now := time.Since(start)
		for ; i < n && time.Duration(i)*interval <= now; i++ {
			k, due := i, start.Add(time.Duration(i)*interval)
			wg.Go(func() {
				if err := op(k); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
				lat[k] = time.Since(due)
			})
		}
		if i < n {
			time.Sleep(time.Duration(i)*interval - time.Since(start))
		}
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

// ReadAllRate reads the whole log from the start in pages and returns the
// number of events and the time it took.
func ReadAllRate(ctx context.Context, s eventstore.Store, page int) (int, time.Duration, error) {
	start := time.Now()
	var after uint64
	n := 0
	for {
		events, err := s.ReadAll(ctx, after, page)
		if err != nil {
			return n, time.Since(start), err
		}
		if len(events) == 0 {
			return n, time.Since(start), nil
		}
		n += len(events)
		after = events[len(events)-1].Position
	}
}

// SubscribeRate reads the whole log from the start through Subscribe, the
// way every consumer does, and returns the number of events and the time
// it took to reach the head.
func SubscribeRate(ctx context.Context, s eventstore.Store) (int, time.Duration, error) {
	head, err := s.Head(ctx)
	if err != nil || head == 0 {
		return 0, 0, err
	}
	start := time.Now()
	n := 0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = s.Subscribe(ctx, 0, func(_ context.Context, events []eventstore.Event) error {
		n += len(events)
		if events[len(events)-1].Position >= head {
			cancel()
		}
		return nil
	})
	if ctx.Err() == nil {
		return n, time.Since(start), err
	}
	return n, time.Since(start), nil
}
