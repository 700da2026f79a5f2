package ledger

import (
	"encoding/json"
	"time"
)

// The other events a ledger is mostly made of (account openings, balance
// imports, holds) are read by hand too, as FundsTransferred is: the shape
// json.Marshal writes, anything else by encoding/json, so decoding into a
// zero value always gives what encoding/json would. Each parser's cases are
// the indexes of its keys, listed in the order json.Marshal writes them;
// each parser reports false (e half-written) for any other shape.

var accountOpenedKeys = []string{"account", "idempotency_key", "request_hash"}

// UnmarshalJSON decodes an AccountOpened (see FundsTransferred.UnmarshalJSON).
func (e *AccountOpened) UnmarshalJSON(b []byte) error {
	type plain AccountOpened // without this method
	if ev := *e; parseAccountOpened(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

func parseAccountOpened(b []byte, e *AccountOpened) bool {
	s := jsonScan{b: b}
	return s.fields(accountOpenedKeys, func(i int) (ok bool) {
		if i == 0 {
			e.Account, ok = s.str()
			return ok
		}
		return s.idempotency(i-1, &e.Idempotency)
	}) && s.i == len(s.b)
}

var balanceImportedKeys = []string{"id", "account", "amount", "reason", "postings", "idempotency_key", "request_hash"}

// UnmarshalJSON decodes a BalanceImported (see FundsTransferred.UnmarshalJSON).
func (e *BalanceImported) UnmarshalJSON(b []byte) error {
	type plain BalanceImported // without this method
	if ev := *e; parseBalanceImported(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

func parseBalanceImported(b []byte, e *BalanceImported) bool {
	s := jsonScan{b: b}
	return s.fields(balanceImportedKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			e.ID, ok = s.str()
		case 1:
			e.Account, ok = s.str()
		case 2:
			e.Amount, ok = s.int()
		case 3:
			e.Reason, ok = s.str()
		case 4:
			e.Postings, ok = s.postings(e.Account, ImportAccount)
		default:
			ok = s.idempotency(i-5, &e.Idempotency)
		}
		return ok
	}) && s.i == len(s.b)
}

var holdPlacedKeys = []string{"id", "account", "amount", "reason", "expires_at", "postings", "idempotency_key", "request_hash"}

// UnmarshalJSON decodes a HoldPlaced (see FundsTransferred.UnmarshalJSON).
func (e *HoldPlaced) UnmarshalJSON(b []byte) error {
	type plain HoldPlaced // without this method
	if ev := *e; parseHoldPlaced(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

func parseHoldPlaced(b []byte, e *HoldPlaced) bool {
	s := jsonScan{b: b}
	return s.fields(holdPlacedKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			e.ID, ok = s.str()
		case 1:
			e.Account, ok = s.str()
		case 2:
			e.Amount, ok = s.int()
		case 3:
			e.Reason, ok = s.str()
		case 4:
			ok = s.time(&e.ExpiresAt)
		case 5:
			e.Postings, ok = s.postings(e.Account)
		default:
			ok = s.idempotency(i-6, &e.Idempotency)
		}
		return ok
	}) && s.i == len(s.b)
}

var holdReleasedKeys = []string{"id", "account", "amount", "reason", "postings", "idempotency_key", "request_hash"}

// UnmarshalJSON decodes a HoldReleased (see FundsTransferred.UnmarshalJSON).
func (e *HoldReleased) UnmarshalJSON(b []byte) error {
	type plain HoldReleased // without this method
	if ev := *e; parseHoldReleased(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

func parseHoldReleased(b []byte, e *HoldReleased) bool {
	s := jsonScan{b: b}
	return s.fields(holdReleasedKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			e.ID, ok = s.str()
		case 1:
			e.Account, ok = s.str()
		case 2:
			e.Amount, ok = s.int()
		case 3:
			e.Reason, ok = s.str()
		case 4:
			e.Postings, ok = s.postings(e.Account)
		default:
			ok = s.idempotency(i-5, &e.Idempotency)
		}
		return ok
	}) && s.i == len(s.b)
}

var holdExpiredKeys = []string{"id", "account", "amount", "expires_at", "postings", "idempotency_key", "request_hash"}

// UnmarshalJSON decodes a HoldExpired (see FundsTransferred.UnmarshalJSON).
func (e *HoldExpired) UnmarshalJSON(b []byte) error {
	type plain HoldExpired // without this method
	if ev := *e; parseHoldExpired(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

func parseHoldExpired(b []byte, e *HoldExpired) bool {
	s := jsonScan{b: b}
	return s.fields(holdExpiredKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			e.ID, ok = s.str()
		case 1:
			e.Account, ok = s.str()
		case 2:
			e.Amount, ok = s.int()
		case 3:
			ok = s.time(&e.ExpiresAt)
		case 4:
			e.Postings, ok = s.postings(e.Account)
		default:
			ok = s.idempotency(i-5, &e.Idempotency)
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
