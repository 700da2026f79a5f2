package esdbtest

import (
	"sync"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subscription is an open $all subscription.
type subscription struct {
	once    sync.Once
	dropped chan struct{}
}

// drop ends the subscription; it reports false if it was dropped already.
func (s *subscription) drop() bool {
	done := false
	s.once.Do(func() { close(s.dropped); done = true })
	return done
}

// catchUpPage is how many records a subscription takes from the log at once.
const catchUpPage = 256

// subscribeAll confirms the subscription, then sends the events after its
// start position that pass its filter: stored ones, a checkpoint and "caught
// up", then live ones, until the client goes away or the subscription is
// dropped.
func (h *streams) subscribeAll(o *api.ReadReq_Options, asString bool, srv api.Streams_ReadServer) error {
	f, err := toFilter(o)
	if err != nil {
		return err
	}
	l := h.s.log
	var after tfpos
	switch v := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_End:
		l.mu.Lock()
		after = tfpos{l.next, l.next}
		l.mu.Unlock()
	case *api.ReadReq_Options_AllOptions_Position:
		after = tfpos{v.Position.GetCommitPosition(), v.Position.GetPreparePosition()}
	}

	sub := &subscription{dropped: make(chan struct{})}
	h.s.addSub(sub)
	defer h.s.removeSub(sub)
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	l.mu.Lock()
	valid := l.validPosition(after.commit)
	l.mu.Unlock()
	if !valid {
		return errInvalidPosition() // the server fails the catch-up read after confirming
	}

	considered, caughtUp := 0, false
	checkpoint := func(p tfpos) error {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
			CommitPosition: p.commit, PreparePosition: p.prepare,
		}}})
	}
	for {
		l.mu.Lock()
		i := l.search(after.commit)
		for i < len(l.records) && l.records[i].tfpos().compare(after) <= 0 {
			i++
		}
		page := l.records[i:min(i+catchUpPage, len(l.records))]
		changed := l.changed
		l.mu.Unlock()

		for _, r := range page {
			after = r.tfpos()
			if f.allows(r) {
				if err := srv.Send(toReadEvent(r, asString)); err != nil {
					return err
				}
			}
			if f != nil {
				if considered++; considered >= f.interval {
					considered = 0
					if err := checkpoint(after); err != nil {
						return err
					}
				}
			}
		}
		if len(page) > 0 {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if f != nil && after.commit > 0 {
				if err := checkpoint(after); err != nil {
					return err
				}
			}
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-sub.dropped:
			return status.Error(codes.Unavailable, "subscription dropped by the esdbtest double")
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}
