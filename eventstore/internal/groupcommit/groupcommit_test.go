package groupcommit_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
)

// TestCloseAnswersEverySubmit: submits racing Close either are committed
// or get ErrClosed; none waits for an answer that never comes.
func TestCloseAnswersEverySubmit(t *testing.T) {
	q := groupcommit.NewQueue()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		q.Run(64, false, func(batch []*groupcommit.Request) {
			for _, r := range batch {
				r.Answer(groupcommit.Result{Res: eventstore.AppendResult{NextRevision: 1}})
			}
		})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := []eventstore.EventData{{Type: "t", Data: json.RawMessage(`{}`)}}
			res, err := q.Submit(ctx, groupcommit.NewAppend("s", eventstore.Any, ev, ev))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && res.NextRevision == 1:
				outcomes["committed"]++
			case errors.Is(err, eventstore.ErrClosed):
				outcomes["closed"]++
			default:
				t.Errorf("submit: %+v, %v", res, err)
			}
		}()
		if i == 100 {
			q.Close()
		}
	}
	wg.Wait()
	<-ran
	if outcomes["committed"]+outcomes["closed"] != 200 || outcomes["closed"] == 0 {
		t.Fatalf("outcomes %v", outcomes)
	}
}

// source is a store of one stream held in memory.
type source struct{ events []eventstore.Event }

func (s *source) Head(string) (groupcommit.Head, error) {
	if len(s.events) == 0 {
		return groupcommit.Head{}, nil
	}
	last := s.events[len(s.events)-1]
	return groupcommit.Head{Next: last.Revision + 1, Hash: last.Hash}, nil
}

func (s *source) Stored(_ string, from uint64, limit int) ([]eventstore.Event, error) {
	out := s.events[min(from, uint64(len(s.events))):]
	return out[:min(limit, len(out))], nil
}

// TestPlanRetryVerdicts: the same ids at the place the original went are
// a retry, answered with the original result marked Retry, only when the
// contents (type, data, metadata) are the same too; other contents, a
// partial overlap or the ids at another place are a conflict; new ids are
// appended.
func TestPlanRetryVerdicts(t *testing.T) {
	id1, id2 := uuid.New(), uuid.New()
	ev := func(id uuid.UUID, data string) eventstore.EventData {
		return eventstore.EventData{ID: id, Type: "t", Data: json.RawMessage(data)}
	}
	stored := &source{}
	p := groupcommit.NewPlan(stored, 0, 2)
	first := []eventstore.EventData{ev(id1, `{"a":1}`), ev(id2, `{"a":2}`)}
	orig, err := p.Add(groupcommit.NewAppend("s", eventstore.NoStream, first, first), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	stored.events = p.Rows
	tests := []struct {
		name     string
		expected eventstore.ExpectedVersion
		events   []eventstore.EventData
		want     error // nil: a retry answered with orig, unless appended
		appended bool
	}{
		{"same", eventstore.NoStream, first, nil, false},
		{"same with any", eventstore.Any, first, nil, false},
		{"other data", eventstore.NoStream, []eventstore.EventData{ev(id1, `{"a":1}`), ev(id2, `{"a":3}`)}, eventstore.ErrConflict, false},
		{"other data with any", eventstore.Any, []eventstore.EventData{ev(id1, `{"a":9}`), ev(id2, `{"a":2}`)}, eventstore.ErrConflict, false},
		{"other type", eventstore.NoStream, []eventstore.EventData{ev(id1, `{"a":1}`), {ID: id2, Type: "u", Data: json.RawMessage(`{"a":2}`)}}, eventstore.ErrConflict, false},
		{"other metadata", eventstore.NoStream, []eventstore.EventData{ev(id1, `{"a":1}`), {ID: id2, Type: "t", Data: json.RawMessage(`{"a":2}`), Metadata: eventstore.Metadata{Actor: "x"}}}, eventstore.ErrConflict, false},
		{"ids at another place", eventstore.NoStream, first[1:], eventstore.ErrConflict, false},
		{"partial", eventstore.NoStream, []eventstore.EventData{ev(id1, `{"a":1}`), ev(uuid.New(), `{}`)}, eventstore.ErrConflict, false},
		{"partial with any", eventstore.Any, []eventstore.EventData{ev(id1, `{"a":1}`), ev(uuid.New(), `{}`)}, eventstore.ErrConflict, false},
		{"new ids", eventstore.Exact(1), []eventstore.EventData{ev(uuid.New(), `{}`)}, nil, true},
		{"stale", eventstore.Exact(0), []eventstore.EventData{ev(uuid.New(), `{}`)}, eventstore.ErrConflict, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := groupcommit.NewPlan(stored, orig.Position, 1)
			res, err := p.Add(groupcommit.NewAppend("s", tc.expected, tc.events, tc.events), time.Unix(0, 0))
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) || len(p.Rows) != 0 {
					t.Fatalf("err %v, %d rows; want %v and none", err, len(p.Rows), tc.want)
				}
			case err != nil:
				t.Fatal(err)
			case tc.appended:
				if len(p.Rows) != 1 || res.NextRevision != 3 || p.Rows[0].Hash != eventstore.ChainHash(stored.events[1].Hash, p.Rows[0]) {
					t.Fatalf("appended %+v, rows %v", res, p.Rows)
				}
			default:
				retry := orig
				retry.Retry = true
				if res != retry || len(p.Rows) != 0 {
					t.Fatalf("retry answered %+v with %d rows, want %+v and none", res, len(p.Rows), orig)
				}
			}
		})
	}
}
