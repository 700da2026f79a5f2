package esdbtest

import (
	"cmp"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tfpos is a position in $all: commit, then prepare position.
type tfpos struct{ commit, prepare uint64 }

func (a tfpos) compare(b tfpos) int {
	if c := cmp.Compare(a.commit, b.commit); c != 0 {
		return c
	}
	return cmp.Compare(a.prepare, b.prepare)
}

func (r *record) tfpos() tfpos { return tfpos{r.pos, r.pos} }

func errInvalidPosition() error {
	return status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")
}

// Read serves reads of a stream and of $all and subscriptions to $all.
func (h *streams) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read: options are required")
	}
	asString := o.GetUuidOption().GetString_() != nil
	_, subscribe := o.GetCountOption().(*api.ReadReq_Options_Subscription)
	switch {
	case o.GetStream() != nil && !subscribe:
		return h.readStream(o, asString, srv)
	case o.GetAll() != nil && !subscribe:
		return h.readAll(o, asString, srv)
	case o.GetAll() != nil:
		return h.subscribeAll(o, asString, srv)
	case o.GetStream() != nil:
		return errUnsupported("a stream subscription")
	}
	return status.Error(codes.InvalidArgument, "read: stream or $all is required")
}

func (h *streams) readStream(o *api.ReadReq_Options, asString bool, srv api.Streams_ReadServer) error {
	so := o.GetStream()
	name := so.GetStreamIdentifier().GetStreamName()
	l := h.s.log
	l.mu.Lock()
	recs := l.streams[string(name)] // append-only: this prefix never changes
	l.mu.Unlock()
	if len(recs) == 0 {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: name},
		}}})
	}
	count := o.GetCount()
	last := uint64(len(recs) - 1)
	if o.GetReadDirection() == api.ReadReq_Options_Backwards {
		from := last
		switch v := so.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_Revision:
			from = min(v.Revision, last)
		case *api.ReadReq_Options_StreamOptions_Start:
			from = 0
		}
		for i := int64(from); i >= 0 && count > 0; i, count = i-1, count-1 {
			if err := srv.Send(toReadEvent(recs[i], asString)); err != nil {
				return err
			}
		}
		return nil
	}
	var from uint64
	switch v := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = v.Revision
	case *api.ReadReq_Options_StreamOptions_End:
		from = last + 1
	}
	for i := from; i <= last && count > 0; i, count = i+1, count-1 {
		if err := srv.Send(toReadEvent(recs[i], asString)); err != nil {
			return err
		}
	}
	return nil
}

func (h *streams) readAll(o *api.ReadReq_Options, asString bool, srv api.Streams_ReadServer) error {
	f, err := toFilter(o)
	if err != nil {
		return err
	}
	l := h.s.log
	l.mu.Lock()
	recs := l.records
	var start int // first index to read forwards, one past the first to read backwards
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	switch v := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		start = 0
	case *api.ReadReq_Options_AllOptions_End:
		start = len(recs)
	case *api.ReadReq_Options_AllOptions_Position:
		p := tfpos{v.Position.GetCommitPosition(), v.Position.GetPreparePosition()}
		if !l.validPosition(p.commit) {
			l.mu.Unlock()
			return errInvalidPosition()
		}
		start = l.search(p.commit)
		// Forwards includes the event at p; backwards excludes it.
		for start < len(recs) && recs[start].tfpos().compare(p) < 0 {
			start++
		}
	}
	l.mu.Unlock()

	count := o.GetCount()
	send := func(r *record) (bool, error) {
		if !f.allows(r) {
			return true, nil
		}
		count--
		return count > 0, srv.Send(toReadEvent(r, asString))
	}
	if count == 0 {
		return nil
	}
	if backwards {
		for i := start - 1; i >= 0; i-- {
			if more, err := send(recs[i]); err != nil || !more {
				return err
			}
		}
		return nil
	}
	for i := start; i < len(recs); i++ {
		if more, err := send(recs[i]); err != nil || !more {
			return err
		}
	}
	return nil
}
