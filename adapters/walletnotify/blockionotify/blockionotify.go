// Package blockionotify feeds block.io's notifications to a
// walletnotify.Sink, from either of block.io's two channels:
//
//   - Websocket (source "blockio-ws") keeps a websocket to block.io's
//     notification server (wss://n.block.io/), subscribes to the account
//     ({"type":"account","api_key":...}) or to each address
//     ({"type":"address","network":...,"address":...}), reconnects with
//     backoff and subscribes again, and subscribes to addresses as they
//     are added.
//   - Webhook (source "blockio-webhook") is the http.Handler for the URL
//     given to block.io's create_notification.
//
// Notifications of type "address", "account" and "new-transactions" carry
// data.txid; the txid (checked with walletnotify.ParseTxID) and the coin
// are all that is passed on. Pings, block notifications and messages of
// other networks are dropped.
//
// # Securing the web hook
//
// block.io does not sign its notifications: anyone who knows the URL can
// post one. The check block.io itself can pass is a secret in the URL, as
// its documentation and cryptoassets.core advise ("the URL must not be
// guessable"): the handler serves WebhookPathPrefix + token, where token is
// WebhookConfig.Token (at least 32 random bytes, see NewToken); any other
// token gets the same 404 as an unknown path, after a constant-time
// comparison of digests (no length or prefix leaks through timing). The
// token travels in the URL, so it ends up in block.io's records and in
// access logs: keep those private, serve the hook over https only, and
// rotate the token (and the notification) if it leaks.
//
// An HMAC cannot come from block.io. When the hook is reached through a
// relay that can sign (a gateway or function that receives block.io's POST
// and forwards it), set WebhookConfig.HMACKey: each request must then carry
// SignatureHeader: "sha256=" + hex HMAC-SHA256(key, body) (see Sign), or is
// refused with 401. Without a relay leave HMACKey empty: requiring a
// signature block.io cannot make would only turn every notification away.
//
// Either way a notification is only a hint: the ledger asks the coin's
// backend what the transaction is, so a forged or replayed notification
// costs a lookup and can credit nothing.
//
// The handler answers 200 as soon as the sink has queued the notification
// (block.io retries anything else for about a day and then disables the
// hook), 400 for a body it cannot read, and 503 when the sink refuses (so
// block.io retries). Retried deliveries of one event are passed on once
// within WebhookConfig.DedupeWindow. block.io's notification_id names the
// notification (the subscription), not the event, so the key is the
// event's: notification_id, type, txid, confirmations and created_at.
package blockionotify

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"strings"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// Sources named in the notifications.
const (
	SourceWebsocket = "blockio-ws"
	SourceWebhook   = "blockio-webhook"
)

var (
	// ErrInvalidConfig: a configuration problem.
	ErrInvalidConfig = errors.New("blockionotify: invalid config")
	// ErrMalformed: a notification that cannot be read.
	ErrMalformed = errors.New("blockionotify: malformed notification")
)

// Secret is a credential (package secret): it never prints, logs or
// marshals its value.
type Secret = secret.String

// Reveal returns the secret's value.

// kind of a decoded message.
type kind int

const (
	kindIgnore kind = iota // pings, answers to subscriptions, blocks, unknown types
	kindTx                 // a transaction notification
)

// notice is what a message means to the ledger.
type notice struct {
	kind    kind
	typ     string
	network string // upper case; empty when the message has none
	txid    string // lower case, valid (kindTx)
	key     string // the event's identity, for deduplication (kindTx)
	failure string // error_message of a {"status":"fail"} message
}

// txTypes are the notification types that carry data.txid.
var txTypes = map[string]bool{"address": true, "account": true, "new-transactions": true}

// decode reads a notification (websocket message or web hook body). A
// transaction notification needs a valid data.txid; anything else that is
// JSON is ignored.
func decode(b []byte) (notice, error) {
	var m struct {
		NotificationID string          `json:"notification_id"`
		Type           string          `json:"type"`
		Status         string          `json:"status"`
		CreatedAt      json.RawMessage `json:"created_at"`
		Data           json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return notice{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	n := notice{typ: m.Type}
	if m.Status == "fail" {
		var d struct {
			ErrorMessage string `json:"error_message"`
		}
		_ = json.Unmarshal(m.Data, &d)
		n.failure = d.ErrorMessage
		if n.failure == "" {
			n.failure = "(no message)"
		}
		return n, nil
	}
	if !txTypes[m.Type] {
		return n, nil
	}
	var d struct {
		Network       string          `json:"network"`
		TxID          string          `json:"txid"`
		Confirmations json.RawMessage `json:"confirmations"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return notice{}, fmt.Errorf("%w: %s without a data object", ErrMalformed, m.Type)
	}
	txid, err := walletnotify.ParseTxID(d.TxID)
	if err != nil {
		return notice{}, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Type, err)
	}
	n.kind, n.txid = kindTx, txid
	n.network = strings.ToUpper(strings.TrimSpace(d.Network))
	n.key = strings.Join([]string{m.NotificationID, m.Type, txid, string(d.Confirmations), string(m.CreatedAt)}, "|")
	return n, nil
}

// networkOK reports whether a message of network is for want (messages
// that name no network are).
func networkOK(network, want string) bool {
	return network == "" || network == want
}
