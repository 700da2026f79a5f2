// Package electortest is the conformance suite of projections.Elector:
// every implementation passes Run. What only an elector shared by several
// instances can show (one leader per role among them, failover, fencing)
// is tested beside that implementation.
package electortest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections"
)

// Run runs the suite. newElector returns a fresh elector, running (its
// Run, if it has one, started and stopped with t), alone on its backend
// with the id it reports in Self.
func Run(t *testing.T, newElector func(t *testing.T) projections.Elector) {
	t.Run("LeadsAndSharesTheTerm", func(t *testing.T) {
		e := newElector(t)
		a := lead(t, e, "outbox")
		b := lead(t, e, "outbox")
		if a.Role != "outbox" || a.Epoch == 0 || a.Epoch != b.Epoch {
			t.Fatalf("terms %+v and %+v: want one term of outbox with an epoch", a, b)
		}
		select {
		case <-a.Done:
			t.Fatal("term done while held")
		default:
		}
	})
	t.Run("SelfAndInstancesListTheRolesHeld", func(t *testing.T) {
		e := newElector(t)
		lead(t, e, "projections")
		lead(t, e, "chainsync:BTC")
		want := []string{"chainsync:BTC", "projections"}
		self := e.Self()
		if !slices.Equal(self.Roles, want) || self.ID == "" {
			t.Fatalf("Self = %+v, want an id and roles %v", self, want)
		}
		var in []projections.Instance
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if in, err = e.Instances(context.Background()); err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(in, func(x projections.Instance) bool { return x.ID == self.ID })
			if i >= 0 && slices.Equal(in[i].Roles, want) && !in[i].Heartbeat.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Instances = %+v: want %s with roles %v and a heartbeat", in, self.ID, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !slices.IsSortedFunc(in, func(a, b projections.Instance) int { return strings.Compare(a.ID, b.ID) }) {
			t.Fatalf("Instances not sorted by id: %+v", in)
		}
	})
	t.Run("ResignEndsTheTermAndANewOneHasAGreaterEpoch", func(t *testing.T) {
		e := newElector(t)
		a := lead(t, e, "expiry")
		e.Resign(a)
		select {
		case <-a.Done:
		case <-time.After(5 * time.Second):
			t.Fatal("resigned term not done")
		}
		if slices.Contains(e.Self().Roles, "expiry") {
			t.Fatalf("Self lists a resigned role: %+v", e.Self())
		}
		e.Resign(a) // twice: nothing
		b := lead(t, e, "expiry")
		if b.Epoch <= a.Epoch {
			t.Fatalf("epoch after resigning %d, before %d: want greater", b.Epoch, a.Epoch)
		}
		e.Resign(a) // a stale term: b goes on
		select {
		case <-b.Done:
			t.Fatal("resigning a stale term ended the current one")
		default:
		}
	})
	t.Run("LeadHonoursItsContext", func(t *testing.T) {
		e := newElector(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.Lead(ctx, "alerts"); err == nil {
			t.Fatal("Lead with a cancelled context: nil error")
		}
	})
}

// lead leads role on e within 15 s.
func lead(t *testing.T, e projections.Elector, role string) projections.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	term, err := e.Lead(ctx, role)
	if err != nil {
		t.Fatalf("lead %s: %v", role, err)
	}
	return term
}
