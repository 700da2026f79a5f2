// Package ws is the realtime endpoint GET /api/v1/ws: a websocket that
// streams the events of the ledger a caller may see, in global order, and
// resumes after a disconnect without a gap or a duplicate.
//
// # Protocol
//
// Every message, both ways, is one JSON object in a text frame with a
// "type" member. A client message is at most 64 KiB; a longer one closes the
// connection with 1009 (message too big). Binary frames are bad messages.
//
// Authentication. The upgrade request carries "Authorization: Bearer
// <token>"; a header with a bad token (or another scheme) is answered with
// HTTP 401 and no upgrade. Clients that cannot set headers (browsers) omit
// the header and send as their first message, within the auth timeout
// (default 10 s):
//
//	{"type":"auth","token":"<token>"}
//
// A first message of any other kind, a bad or expired token, or no message
// in time closes the connection with code 4401 (reason "unauthorized"), and
// nothing else is sent. After authentication the server sends
//
//	{"type":"authenticated","username":"alice","expires_at":"2026-01-02T03:04:05Z"}
//
// (expires_at is absent for tokens without expiry). When the token expires
// the server closes with 4401 ("token expired"): reconnect with a fresh
// token and resume with "from".
//
// Revocation. The credential is checked again every few seconds (default
// 2 s) and at once when its user's credentials change on this instance: a
// logout, a session revocation, an API key revocation or disabling the user
// closes the connection with 4401 ("credentials revoked"), whatever its
// topics.
//
// Connections per user. A user holds at most a configured number of
// connections at a time (default 8). One more is refused with HTTP 429
// (problem code too_many_connections) before the upgrade when the token is
// in the header, or closed with 4429 after the first message.
//
// Subscription.
//
//	{"type":"subscribe","topics":["deposits","prices"],"from":123}
//
// Topics are deposits, withdrawals, transfers, alerts and prices; at least
// one is required. "from" is optional: events with a position greater than
// from are sent, the stored ones first (catch-up) and then new ones as they
// happen (live); without it, only events after the current head. The reply
// is
//
//	{"type":"subscribed","topics":["deposits","prices"],"from":123}
//
// with the from in effect (the head when it was absent). A new subscribe
// replaces the previous subscription: after its "subscribed" reply only
// events of the new one arrive, starting after its from. An unknown topic is
// answered with {"type":"error","code":"unknown_topic","message":"..."} and
// leaves the current subscription and the connection as they were.
//
// Events.
//
//	{"type":"event","topic":"deposits","position":124,"stream":"wallet-main",
//	 "revision":7,"event_type":"ledger.deposit_seen",
//	 "time":"2026-01-02T03:04:05.123456Z","data":{...}}
//
// position is the event's global position, revision its place in its stream,
// time when it was stored (RFC 3339, UTC), data the event's JSON in the
// REST API's representation: as stored, but every amount of a ledger event
// (amount, fee, fee_shortfall, shortfall, postings[].amount) an exact
// decimal string with the coin's decimals ("0.50000000"), not minor units.
// Events arrive in increasing position, each at most once per subscription.
// Resubscribing (on this or a new connection) with from set to the last
// position received, or to the position of the last heartbeat, continues
// with no gap and no duplicate.
//
// What each topic carries, and who sees it:
//
//	deposits     ledger.deposit_* of stream wallet-<w> (seen, every
//	             confirmation change, confirmed, reversed)  callers who may read w
//	withdrawals  ledger.withdrawal_* of stream wallet-<w>   callers who may read w
//	transfers    ledger.funds_transferred of wallet-<w>     callers who may read w
//	alerts       alerts.* of stream alert-<id>              the alert's owner
//	prices       prices.ticked of stream price-<BASE>-<QUOTE>  every caller
//
// Nothing else is ever sent.
//
// Heartbeat. Every heartbeat interval (default 15 s) the server sends
//
//	{"type":"heartbeat","position":130}
//
// position is the last position the subscription has scanned, matching or
// not, whose events have all been sent before this message: a client that
// persists it resumes from there without missing anything (0 before the
// first subscribe). Once authenticated, the client may send {"type":"ping"}
// at any time and gets {"type":"pong"}; websocket ping frames are answered
// too.
//
// Errors. A message that is not JSON, has an unknown type or bad members is
// answered with {"type":"error","code":"bad_message","message":"..."}; the
// third bad message in a row closes the connection with 1008 (policy
// violation) instead. Any good message resets the count.
//
// Close codes sent by the server:
//
//	4401  unauthorized, the token expired or the credential was revoked:
//	      reconnect with a (fresh) token
//	4408  too slow: more events were waiting for the client than the server
//	      buffers (default 10000, configurable); reconnect and resubscribe
//	      with from
//	4429  the user holds the most connections allowed
//	1008  three bad messages in a row
//	1009  a client message over 64 KiB
//	1001  server shutting down: reconnect and resume with from
//	1011  internal error: reconnect and resume with from
package ws
