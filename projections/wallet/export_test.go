package wallet

import (
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
)

// NewWithCodec returns the projection decoding with c, for tests of event
// types the ledger does not have yet.
func NewWithCodec(c *eventstore.Codec[ledger.Event]) *Projection { return &Projection{codec: c} }

// InQuery is inQuery, for its test.
var InQuery = inQuery
