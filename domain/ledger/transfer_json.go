package ledger

import (
	"encoding/json"
	"math"
	"unicode/utf8"
)

// UnmarshalJSON decodes a FundsTransferred. Transfers are most of a
// ledger's events, and every read-model rebuild and aggregate load decodes
// them, so the shape json.Marshal writes (compact, the exact field names,
// strings without escapes, integer amounts) is read here by hand, without
// reflection; any other input (escapes, whitespace, nulls, other spellings
// of a key, unknown or repeated keys) goes to encoding/json as usual, so
// decoding into a zero value always gives what encoding/json would. It
// rejects invalid JSON by itself (what it parses is valid; the rest goes to
// json.Unmarshal), so it may be called directly, as eventstore.Codec does.
func (e *FundsTransferred) UnmarshalJSON(b []byte) error {
	type plain FundsTransferred // without this method
	if ev := *e; parseTransfer(b, &ev) {
		*e = ev
		return nil
	}
	return json.Unmarshal(b, (*plain)(e))
}

// transferKeys are the keys of a FundsTransferred, in the order json.Marshal
// writes them; parseTransfer's cases are their indexes.
var transferKeys = []string{"id", "from", "to", "amount", "memo", "postings", "idempotency_key", "request_hash"}

// parseTransfer decodes b into e if it has the simple shape (see
// UnmarshalJSON); when it reports false, e may be half-written.
func parseTransfer(b []byte, e *FundsTransferred) bool {
	s := jsonScan{b: b}
	return s.fields(transferKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			e.ID, ok = s.str()
		case 1:
			e.From, ok = s.str()
		case 2:
			e.To, ok = s.str()
		case 3:
			e.Amount, ok = s.int()
		case 4:
			e.Memo, ok = s.str()
		case 5:
			e.Postings, ok = s.postings(e.From, e.To)
		default:
			ok = s.idempotency(i-6, &e.Idempotency)
		}
		return ok
	}) && s.i == len(s.b)
}

// jsonScan reads the simple JSON shape of the hand decoders (see
// FundsTransferred.UnmarshalJSON).
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads {"key":value,...}, calling field after each key's colon to
// read its value.
func (s *jsonScan) object(field func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.raw()
		if !ok || !s.next(':') || !field(key) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// fields reads an object whose keys are among keys, each at most once,
// calling value with a key's index to read its value. Another key (unknown,
// repeated, or spelled otherwise) fails.
func (s *jsonScan) fields(keys []string, value func(i int) bool) bool {
	var seen uint64
	return s.object(func(key []byte) bool {
		for i, k := range keys {
			if string(key) == k {
				if seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
				return value(i)
			}
		}
		return false
	})
}

// raw reads a string without escapes or control characters, in valid
// UTF-8, and returns its bytes.
func (s *jsonScan) raw() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	rest := s.b[s.i:]
	var high byte // every byte ORed: ASCII unless its top bit is set
	for n, c := range rest {
		switch {
		case c == '"':
			v := rest[:n]
			s.i += n + 1
			return v, high < utf8.RuneSelf || utf8.Valid(v)
		case c < 0x20 || c == '\\':
			return nil, false
		}
		high |= c
	}
	return nil, false
}

func (s *jsonScan) str() (string, bool) {
	v, ok := s.raw()
	return string(v), ok
}

// strOf reads a string as str, returning the one of known it equals
// (sharing it rather than allocating a copy).
func (s *jsonScan) strOf(known ...string) (string, bool) {
	v, ok := s.raw()
	if !ok {
		return "", false
	}
	for _, k := range known {
		if string(v) == k {
			return k, true
		}
	}
	return string(v), true
}

// int reads an integer without exponent or fraction that fits int64.
func (s *jsonScan) int() (int64, bool) {
	neg := s.next('-')
	rest := s.b[s.i:]
	var n uint64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		if digits == 19 {
			return 0, false // over 19 digits (no leading zeros): beyond int64
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	if digits == 0 || (rest[0] == '0' && digits > 1) {
		return 0, false
	}
	if digits < len(rest) && (rest[digits] == '.' || rest[digits] == 'e' || rest[digits] == 'E') {
		return 0, false
	}
	s.i += digits
	switch {
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	case neg && n <= math.MaxInt64+1:
		return -int64(n), true // -(MaxInt64+1) wraps to MinInt64
	}
	return 0, false
}

// idempotency reads the value of Idempotency's key i (0: idempotency_key,
// 1: request_hash).
func (s *jsonScan) idempotency(i int, k *Idempotency) (ok bool) {
	switch i {
	case 0:
		k.Key, ok = s.str()
	case 1:
		k.RequestHash, ok = s.str()
	}
	return ok
}

// postingKeys are the keys of a Posting; postings' cases are their indexes.
var postingKeys = []string{"account", "bucket", "amount"}

// postings reads an array of postings, each {"account":…,"bucket":…,"amount":…};
// an account equal to one of known shares its string.
func (s *jsonScan) postings(known ...string) ([]Posting, bool) {
	if !s.next('[') {
		return nil, false
	}
	out := make([]Posting, 0, 2)
	if s.next(']') {
		return out, true
	}
	for {
		var p Posting
		ok := s.fields(postingKeys, func(i int) (ok bool) {
			switch i {
			case 0:
				p.Account, ok = s.strOf(known...)
			case 1:
				var b string
				b, ok = s.strOf(string(Available), string(Held), string(Pending))
				p.Bucket = Bucket(b)
			case 2:
				p.Amount, ok = s.int()
			}
			return ok
		})
		if !ok {
			return nil, false
		}
		out = append(out, p)
		if s.next(']') {
			return out, true
		}
		if !s.next(',') {
			return nil, false
		}
	}
}
