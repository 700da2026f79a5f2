package alerting

import "github.com/coinledger/coinledger/domain/alerts"

// Watch is an alert as the engine watches it: its state, the revision of
// the next event of its stream to fold, and its index entry.
type Watch struct {
	Alert alerts.Alert
	Next  uint64
	Entry alerts.Entry
	// Indexed says the index holds Entry for the alert.
	Indexed bool
}

// Watches returns the engine's state. Call it only while the engine is
// not handling events.
func Watches(e *Engine) map[alerts.ID]Watch {
	out := make(map[alerts.ID]Watch, len(e.watched))
	for id, t := range e.watched {
		entry, ok := e.index.Get(id)
		out[id] = Watch{Alert: *t.alert, Next: t.next, Entry: entry, Indexed: ok}
	}
	return out
}
