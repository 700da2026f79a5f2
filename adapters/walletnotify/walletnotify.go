// Package walletnotify carries bitcoind's walletnotify signal ("something
// happened to transaction txid") from the channels a node can use (an HTTP
// POST, a named pipe, Redis pubsub, block.io) to the ledger. A notification
// says nothing but coin and txid: the ledger asks the coin's backend what
// the transaction is, so repeated, late or forged notifications can never
// credit anything by themselves.
package walletnotify

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidTxID: not a transaction id (64 hex digits).
var ErrInvalidTxID = errors.New("walletnotify: invalid txid")

// Notification is one walletnotify signal.
type Notification struct {
	Coin string `json:"coin"` // coin code, e.g. BTC
	TxID string `json:"txid"` // 64 lower-case hex digits
	// Source names the channel it came by (http, pipe, redis, blockio-ws,
	// blockio-webhook), for logs.
	Source string `json:"source"`
}

// Sink takes notifications from a source. It returns once the notification
// is queued (not processed); an error means it was not taken and the source
// should report the failure to its sender where it can (HTTP 503).
type Sink func(ctx context.Context, n Notification) error

// ParseTxID validates a txid as a node writes it (64 hex digits, any case,
// surrounding white space ignored) and returns it in lower case.
func ParseTxID(s string) (string, error) {
	t := strings.TrimSpace(s)
	if len(t) != 64 {
		return "", fmt.Errorf("%w: %d characters, want 64", ErrInvalidTxID, len(t))
	}
	b := []byte(t)
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			b[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("%w: character %d is not a hex digit", ErrInvalidTxID, i+1)
		}
	}
	return string(b), nil
}
