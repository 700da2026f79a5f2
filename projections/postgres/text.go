package postgres

import (
	"database/sql"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Postgres text refuses the NUL byte and invalid UTF-8 ("invalid byte
// sequence for encoding UTF8: 0x00"), while the event log may hold both (an
// event written before the edge refused them, an import). A projection that
// wrote such text would fail its batch at every restart, for ever. So every
// string parameter is escaped on its way in and every string scanned is
// unescaped on its way out, here, in the one place all SQL passes through:
// projections read back exactly the string they wrote, on Postgres as on
// SQLite (which stores any bytes and needs no escape).
//
// The escape is escChar (U+FDD0, a Unicode noncharacter reserved for
// internal use) followed by two upper-case hex digits: it stands for one
// byte. escapeText replaces with it each NUL byte, each byte of invalid
// UTF-8, and each byte of escChar itself, and leaves every other character
// as it is, so ordinary text is stored unchanged (and compares, sorts and
// matches as before) and the mapping is one-to-one: equality of parameters
// and stored values is preserved. Text computed inside SQL from escaped
// values (lengths, substrings) sees the escaped form.
const escChar = "\uFDD0"

const hexDigits = "0123456789ABCDEF"

// escapeText returns s in a form Postgres text accepts: see escChar.
func escapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 16)
	escByte := func(b byte) {
		sb.WriteString(escChar)
		sb.WriteByte(hexDigits[b>>4])
		sb.WriteByte(hexDigits[b&0x0f])
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				escByte(c)
			} else {
				sb.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			escByte(c)
		case s[i:i+size] == escChar:
			for j := range size {
				escByte(s[i+j])
			}
		default:
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

// needsEscape reports whether escapeText would change s. Plain ASCII
// without NUL, the common case, is checked byte by byte without decoding.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return true
		case c >= utf8.RuneSelf:
			rest := s[i:]
			return !utf8.ValidString(rest) || strings.IndexByte(rest, 0) >= 0 || strings.Contains(rest, escChar)
		}
	}
	return false
}

// unescapeText reverses escapeText. An escChar not followed by two hex
// digits (text that was not written through escapeText) is kept as it is.
func unescapeText(s string) string {
	i := strings.Index(s, escChar)
	if i < 0 {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i >= 0 {
		sb.WriteString(s[:i])
		s = s[i+len(escChar):]
		hi, lo := -1, -1
		if len(s) >= 2 {
			hi, lo = strings.IndexByte(hexDigits, s[0]), strings.IndexByte(hexDigits, s[1])
		}
		if hi < 0 || lo < 0 {
			sb.WriteString(escChar)
		} else {
			sb.WriteByte(byte(hi<<4 | lo))
			s = s[2:]
		}
		i = strings.Index(s, escChar)
	}
	sb.WriteString(s)
	return sb.String()
}

// escapeArg returns v with its text escaped when v is a string (or a
// *string, a sql.NullString, or a value of a named string type), else v
// itself. ok reports whether it changed anything.
func escapeArg(v any) (out any, ok bool) {
	switch x := v.(type) {
	case nil, int64, int, int32, uint64, bool, []byte, float64:
		return v, false
	case string:
		if needsEscape(x) {
			return escapeText(x), true
		}
		return v, false
	case *string:
		if x != nil && needsEscape(*x) {
			e := escapeText(*x)
			return &e, true
		}
		return v, false
	case sql.NullString:
		if x.Valid && needsEscape(x.String) {
			return sql.NullString{String: escapeText(x.String), Valid: true}, true
		}
		return v, false
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String && needsEscape(rv.String()) {
		return escapeText(rv.String()), true
	}
	return v, false
}

// escapeArgs returns args with every text parameter escaped, and whether
// any was; it returns args itself, not a copy, when none needs it.
func escapeArgs(args []any) ([]any, bool) {
	var out []any
	for i, a := range args {
		e, changed := escapeArg(a)
		if !changed {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = e
	}
	if out == nil {
		return args, false
	}
	return out, true
}

// escapeRows is escapeArgs for the rows of a bulk insert: rows that need no
// escape are shared, not copied, and so is rs when none does.
func escapeRows(rs [][]any) [][]any {
	var out [][]any
	for i, r := range rs {
		e, changed := escapeArgs(r)
		if !changed {
			continue
		}
		if out == nil {
			out = append([][]any(nil), rs...)
		}
		out[i] = e
	}
	if out == nil {
		return rs
	}
	return out
}

// unescapeDest unescapes, after a Scan, the text scanned into dest: *string,
// **string, *sql.NullString and pointers to named string types.
func unescapeDest(dest []any) {
	for _, d := range dest {
		switch p := d.(type) {
		case *int64, *int, *[]byte, *bool, *sql.NullInt64, **int64:
		case *string:
			*p = unescapeText(*p)
		case **string:
			// A new string only when there is an escape: the pointer
			// scanned may not be written through, and clean text (the
			// common case) costs no allocation.
			if *p != nil && strings.Contains(**p, escChar) {
				s := unescapeText(**p)
				*p = &s
			}
		case *sql.NullString:
			p.String = unescapeText(p.String)
		case *any:
			if s, ok := (*p).(string); ok && strings.Contains(s, escChar) {
				*p = unescapeText(s)
			}
		default:
			if rv := reflect.ValueOf(d); rv.Kind() == reflect.Pointer && !rv.IsNil() {
				if e := rv.Elem(); e.Kind() == reflect.String && e.CanSet() {
					e.SetString(unescapeText(e.String()))
				}
			}
		}
	}
}
