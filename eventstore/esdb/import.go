package esdb

import (
	"context"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
)

var _ eventstore.Importer = (*Store)(nil)

// Import implements eventstore.Importer: it appends events exported from
// another store as they are (ids, creation times and hashes in the user
// metadata), each run of consecutive events of one stream as one append
// with the exact expected revision (no stream for revision 0), split where
// a run exceeds MaxAppendSize. It stops at the first failure; the runs
// before it stay written.
func (s *Store) Import(ctx context.Context, events []eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateImport(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	var res eventstore.AppendResult
	for len(events) > 0 {
		n, size := 0, 0
		data := make([]esdb.EventData, 0, 16)
		for n < len(events) && events[n].Stream == events[0].Stream && events[n].Revision == events[0].Revision+uint64(n) {
			e := events[n]
			meta, err := encodeMetadata(e)
			if err != nil {
				return res, fmt.Errorf("import %s: metadata: %w", e, err)
			}
			sz := appendSize(e.Data, meta, e.Type)
			if n > 0 && size+sz > s.opts.MaxAppendSize {
				break
			}
			size += sz
			data = append(data, esdb.EventData{EventID: e.ID, EventType: e.Type, ContentType: esdb.ContentTypeJson, Data: e.Data, Metadata: meta})
			n++
		}
		first := events[0]
		var exp esdb.ExpectedRevision = esdb.NoStream{}
		if first.Revision > 0 {
			exp = esdb.Revision(first.Revision - 1)
		}
		var wr *esdb.WriteResult
		err := s.call(ctx, func(ctx context.Context, c *esdb.Client) error {
			var err error
			wr, err = c.AppendToStream(ctx, first.Stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, data...)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("import %s: %w", first, translate(err))
		}
		res = eventstore.AppendResult{NextRevision: wr.NextExpectedVersion + 1, Position: wr.CommitPosition}
		events = events[n:]
	}
	return res, nil
}
