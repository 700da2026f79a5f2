package ledger

import (
	"encoding/json"
	"time"
)

// The other events a ledger is mostly made of (account openings, balance
// imports, holds) are read by hand too, as FundsTransferred is: the shape
// json.Marshal writes, anything else by encoding/json, so decoding into a
// zero value always gives what encoding/json would.

// UnmarshalJSON decodes an AccountOpened (see FundsTransferred.UnmarshalJSON).
func (e *AccountOpened) UnmarshalJSON(b []byte) error {
	type plain AccountOpened // without this method
	if ev := *e; parseAccountOpened(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// UnmarshalJSON decodes a BalanceImported (see FundsTransferred.UnmarshalJSON).
func (e *BalanceImported) UnmarshalJSON(b []byte) error {
	type plain BalanceImported // without this method
	if ev := *e; parseBalanceImported(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// UnmarshalJSON decodes a HoldPlaced (see FundsTransferred.UnmarshalJSON).
func (e *HoldPlaced) UnmarshalJSON(b []byte) error {
	type plain HoldPlaced // without this method
	if ev := *e; parseHoldPlaced(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// UnmarshalJSON decodes a HoldReleased (see FundsTransferred.UnmarshalJSON).
func (e *HoldReleased) UnmarshalJSON(b []byte) error {
	type plain HoldReleased // without this method
	if ev := *e; parseHoldReleased(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// UnmarshalJSON decodes a HoldExpired (see FundsTransferred.UnmarshalJSON).
func (e *HoldExpired) UnmarshalJSON(b []byte) error {
	type plain HoldExpired // without this method
	if ev := *e; parseHoldExpired(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// The keys of each event type, in the order json.Marshal writes them.
var (
	accountOpenedKeys   = []string{"account", "idempotency_key", "request_hash"}
	balanceImportedKeys = []string{"id", "account", "amount", "reason", "postings", "idempotency_key", "request_hash"}
	holdPlacedKeys      = []string{"id", "account", "amount", "reason", "expires_at", "postings", "idempotency_key", "request_hash"}
	holdReleasedKeys    = []string{"id", "account", "amount", "reason", "postings", "idempotency_key", "request_hash"}
	holdExpiredKeys     = []string{"id", "account", "amount", "expires_at", "postings", "idempotency_key", "request_hash"}
)

func parseAccountOpened(b []byte, e *AccountOpened) bool {
	return parseAccountEvent(b, accountOpenedKeys, accountFields{account: &e.Account, idem: &e.Idempotency})
}

func parseBalanceImported(b []byte, e *BalanceImported) bool {
	return parseAccountEvent(b, balanceImportedKeys, accountFields{id: &e.ID, account: &e.Account, amount: &e.Amount,
		reason: &e.Reason, postings: &e.Postings, idem: &e.Idempotency})
}

func parseHoldPlaced(b []byte, e *HoldPlaced) bool {
	return parseAccountEvent(b, holdPlacedKeys, accountFields{id: &e.ID, account: &e.Account, amount: &e.Amount,
		reason: &e.Reason, expires: &e.ExpiresAt, postings: &e.Postings, idem: &e.Idempotency})
}

func parseHoldReleased(b []byte, e *HoldReleased) bool {
	return parseAccountEvent(b, holdReleasedKeys, accountFields{id: &e.ID, account: &e.Account, amount: &e.Amount,
		reason: &e.Reason, postings: &e.Postings, idem: &e.Idempotency})
}

func parseHoldExpired(b []byte, e *HoldExpired) bool {
	return parseAccountEvent(b, holdExpiredKeys, accountFields{id: &e.ID, account: &e.Account, amount: &e.Amount,
		expires: &e.ExpiresAt, postings: &e.Postings, idem: &e.Idempotency})
}

// accountFields points at the fields of an event about one account; the
// keys given to parseAccountEvent say which of them the event has.
type accountFields struct {
	id, account, reason *string
	amount              *int64
	expires             *time.Time
	postings            *[]Posting
	idem                *Idempotency
}

// parseAccountEvent decodes b, an object with (some of) keys, into f if it
// has the simple shape (see FundsTransferred.UnmarshalJSON); when it
// reports false, f's fields may be half-written.
func parseAccountEvent(b []byte, keys []string, f accountFields) bool {
	s := jsonScan{b: b}
	return s.fields(keys, func(i int) (ok bool) {
		switch keys[i] {
		case "id":
			*f.id, ok = s.str()
		case "account":
			*f.account, ok = s.str()
		case "amount":
			*f.amount, ok = s.int()
		case "reason":
			*f.reason, ok = s.str()
		case "expires_at":
			ok = s.time(f.expires)
		case "postings":
			*f.postings, ok = s.postings(*f.account, ImportAccount)
		case "idempotency_key":
			f.idem.Key, ok = s.str()
		case "request_hash":
			f.idem.RequestHash, ok = s.str()
		}
		return ok
	}) && s.i == len(s.b)
}

// time reads a string as encoding/json reads it into a time.Time: its
// quoted bytes given to time.Time.UnmarshalJSON.
func (s *jsonScan) time(t *time.Time) bool {
	start := s.i
	if _, ok := s.raw(); !ok {
		return false
	}
	return t.UnmarshalJSON(s.b[start:s.i]) == nil
}
