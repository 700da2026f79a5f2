package ledger

import (
	"encoding/json"
	"strconv"
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
	ev := *e
	if parseTransfer(b, &ev) {
		*e = ev
		return nil
	}
	type plain FundsTransferred // without this method
	return json.Unmarshal(b, (*plain)(e))
}

// parseTransfer decodes b into e if b has the simple shape (see
// UnmarshalJSON); when it reports false, e may be half-written.
func parseTransfer(b []byte, e *FundsTransferred) bool {
	s := jsonScan{b: b}
	var seen uint
	return s.object(func(key []byte) bool {
		var bit uint
		ok := true
		switch string(key) {
		case "id":
			bit = 1
			e.ID, ok = s.str()
		case "from":
			bit = 2
			e.From, ok = s.str()
		case "to":
			bit = 4
			e.To, ok = s.str()
		case "amount":
			bit = 8
			e.Amount, ok = s.int()
		case "memo":
			bit = 16
			e.Memo, ok = s.str()
		case "postings":
			bit = 32
			e.Postings, ok = s.postings()
		case "idempotency_key":
			bit = 64
			e.Key, ok = s.str()
		case "request_hash":
			bit = 128
			e.RequestHash, ok = s.str()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}) && s.i == len(s.b)
}

// jsonScan reads the simple JSON shape of parseTransfer.
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

// raw reads a string without escapes or control characters, in valid
// UTF-8, and returns its bytes.
func (s *jsonScan) raw() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, utf8.Valid(v)
		case c < 0x20 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (s *jsonScan) str() (string, bool) {
	v, ok := s.raw()
	return string(v), ok
}

// int reads an integer without exponent or fraction that fits int64.
func (s *jsonScan) int() (int64, bool) {
	start := s.i
	s.next('-')
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == digits || (s.b[digits] == '0' && s.i-digits > 1) {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	return n, err == nil
}

// postings reads an array of postings, each {"account":…,"bucket":…,"amount":…}.
func (s *jsonScan) postings() ([]Posting, bool) {
	if !s.next('[') {
		return nil, false
	}
	out := make([]Posting, 0, 2)
	if s.next(']') {
		return out, true
	}
	for {
		var p Posting
		var seen uint
		ok := s.object(func(key []byte) bool {
			var bit uint
			ok := true
			switch string(key) {
			case "account":
				bit = 1
				p.Account, ok = s.str()
			case "bucket":
				bit = 2
				var b string
				b, ok = s.str()
				p.Bucket = Bucket(b)
			case "amount":
				bit = 4
				p.Amount, ok = s.int()
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			return true
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
