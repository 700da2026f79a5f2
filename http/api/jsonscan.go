package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// scanBody checks a request body for what encoding/json lets through
// silently, before it is decoded:
//
//   - the body must be one JSON object (null, arrays and scalars are not
//     requests): malformed_json;
//   - no object, at any depth, may hold two keys that encoding/json would
//     match to the same field, i.e. keys equal under Unicode case folding
//     ("amount" twice, "username" and "USERNAME"): encoding/json keeps the
//     last, so a body could mean two things; malformed_json naming the key;
//   - every string, keys included, must be valid UTF-8 without unpaired
//     surrogate escapes (encoding/json replaces both with U+FFFD) and
//     without control characters U+0000–U+001F and U+007F, escaped or not:
//     invalid_text naming the field. No field accepts control characters,
//     not even tab or newline in a memo: every text of the API is one line.
//
// Fields are named by their JSON path: "memo", "wallets[0].wallet".
// Syntax errors are reported as the decoder reports them.
func scanBody(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers are not parsed here: no range errors
	var stack []*scanFrame
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return badRequest("malformed_json", "the JSON body ends too early")
			}
			return jsonError(err)
		}
		end := dec.InputOffset()
		seg := body[prev:end]
		prev = end
		if len(stack) == 0 && tok != json.Delim('{') {
			return badRequest("malformed_json", "the body must be a JSON object, not %s", jsonKind(tok))
		}
		var top *scanFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, &scanFrame{object: t == '{'})
				continue // the value ends with its closing delimiter
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil // the rest is the decoder's business (trailing data)
				}
				stack[len(stack)-1].valueDone()
				continue
			}
		case string:
			lit := seg[bytes.IndexByte(seg, '"'):]
			if top.object && !top.haveKey {
				if why := checkText(lit, t); why != "" {
					return invalidText(pathOf(stack, t, true), why)
				}
				if why := top.addKey(t); why != "" {
					field := pathOf(stack, t, true)
					return &apiError{status: http.StatusBadRequest, code: "malformed_json",
						detail: fmt.Sprintf("duplicate key %s: %s", field, why), fields: []fieldError{{Field: field, Message: why}}}
				}
				continue
			}
			if why := checkText(lit, t); why != "" {
				return invalidText(pathOf(stack, "", false), why)
			}
		}
		top.valueDone()
	}
}

// scanFrame is an object or array being scanned.
type scanFrame struct {
	object  bool
	haveKey bool              // object: a key was read, its value is next
	key     string            // object: the current key
	folded  map[string]string // object: folded key → key as written
	index   int               // array: index of the next value
}

// addKey records key in an object; it returns why key may not be there.
func (f *scanFrame) addKey(key string) string {
	if f.folded == nil {
		f.folded = make(map[string]string, 8)
	}
	k := foldKey(key)
	if first, dup := f.folded[k]; dup {
		if first == key {
			return "the key appears twice in one object"
		}
		return fmt.Sprintf("the key repeats %q (keys are matched regardless of case)", first)
	}
	f.folded[k] = key
	f.key, f.haveKey = key, true
	return ""
}

func (f *scanFrame) valueDone() {
	if f.object {
		f.haveKey = false
		return
	}
	f.index++
}

// foldKey maps s to one representative of its class under Unicode simple
// case folding, the equivalence encoding/json matches field names by
// (bytes.EqualFold): each rune becomes the smallest rune of its folding
// orbit, so "K", "k" and "K" (Kelvin) fold alike, as do "s", "S" and "ſ".
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// checkText checks one JSON string: lit is its literal as written (from
// the opening quote to the closing one), s the decoded value. It returns
// what is wrong with it, "" if nothing.
func checkText(lit []byte, s string) string {
	for i := 1; i < len(lit)-1; {
		b := lit[i]
		switch {
		case b == '\\':
			if lit[i+1] != 'u' {
				i += 2
				continue
			}
			r := hex4(lit[i+2 : i+6])
			i += 6
			switch {
			case utf16IsHigh(r):
				if i+6 <= len(lit)-1 && lit[i] == '\\' && lit[i+1] == 'u' && utf16IsLow(hex4(lit[i+2:i+6])) {
					i += 6
					continue
				}
				return fmt.Sprintf("has an unpaired surrogate escape \\u%04x", r)
			case utf16IsLow(r):
				return fmt.Sprintf("has an unpaired surrogate escape \\u%04x", r)
			}
		case b < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(lit[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte 0x%02x)", lit[i])
			}
			i += size
		}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}

func utf16IsHigh(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }

// hex4 parses the four hex digits of a \u escape the decoder has already
// found well-formed.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// pathOf is the JSON path of the value being scanned: with key (isKey),
// of that key of the innermost object.
func pathOf(stack []*scanFrame, key string, isKey bool) string {
	var b strings.Builder
	for i, f := range stack {
		last := i == len(stack)-1
		switch {
		case f.object && last && isKey:
			writeKey(&b, key)
		case f.object:
			writeKey(&b, f.key)
		default:
			fmt.Fprintf(&b, "[%d]", f.index)
		}
	}
	return b.String()
}

// writeKey appends one object key to a path: "a.b", or a["x y"] for keys
// that are not plain names.
func writeKey(b *strings.Builder, key string) {
	plain := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		b.WriteString("[" + strconv.QuoteToASCII(key) + "]")
	case b.Len() > 0:
		b.WriteString("." + key)
	default:
		b.WriteString(key)
	}
}

func invalidText(field, problem string) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_text",
		detail: fmt.Sprintf("%s %s (text must be valid UTF-8 without control characters)", field, problem),
		fields: []fieldError{{Field: field, Message: problem}}}
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}
