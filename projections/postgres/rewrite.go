package postgres

import (
	"strconv"
	"strings"
	"sync"
)

// rewriter turns ? placeholders into $1, $2, ... and caches the result per
// query text. Queries are expected to be constants, so the cache stays
// small; past maxCached entries it stops growing and rewrites each time.
type rewriter struct {
	mu    sync.RWMutex
	cache map[string]string
}

const maxCached = 4096

func (r *rewriter) rewrite(query string) string {
	r.mu.RLock()
	out, ok := r.cache[query]
	r.mu.RUnlock()
	if ok {
		return out
	}
	out = rebind(query)
	r.mu.Lock()
	if r.cache == nil {
		r.cache = make(map[string]string)
	}
	if len(r.cache) < maxCached {
		r.cache[query] = out
	}
	r.mu.Unlock()
	return out
}

// rebind returns query with every ? placeholder replaced by $1, $2, ... in
// order. A ? inside a '...' string, an E'...' string (backslash escapes), a
// "..." identifier, a $tag$...$tag$ string, a -- line comment or a /* */
// comment is left alone.
func rebind(query string) string {
	if !strings.ContainsRune(query, '?') {
		return query
	}
	var sb strings.Builder
	sb.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '?':
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			i++
		case c == '\'':
			escapes := i > 0 && (query[i-1] == 'E' || query[i-1] == 'e') && (i < 2 || !isIdent(query[i-2]))
			j := skipQuoted(query, i, '\'', escapes)
			sb.WriteString(query[i:j])
			i = j
		case c == '"':
			j := skipQuoted(query, i, '"', false)
			sb.WriteString(query[i:j])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			sb.WriteString(query[i : i+j])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				j = len(query)
			} else {
				j = i + 2 + j + 2
			}
			sb.WriteString(query[i:j])
			i = j
		case c == '$' && (i == 0 || !isIdent(query[i-1])):
			j := skipDollarQuoted(query, i)
			sb.WriteString(query[i:j])
			i = j
		default:
			sb.WriteByte(c)
			i++
		}
	}
	return sb.String()
}

// skipQuoted returns the index after the quoted text starting at query[i],
// where a doubled quote stands for itself and, with escapes, a backslash
// escapes the next byte. An unterminated quote runs to the end.
func skipQuoted(query string, i int, q byte, escapes bool) int {
	for j := i + 1; j < len(query); j++ {
		switch query[j] {
		case '\\':
			if escapes {
				j++
			}
		case q:
			if j+1 < len(query) && query[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(query)
}

// skipDollarQuoted returns the index after a $tag$...$tag$ string starting at
// query[i], or i+1 when query[i] starts no such string (e.g. $1).
func skipDollarQuoted(query string, i int) int {
	j := i + 1
	for j < len(query) && isIdent(query[j]) && !(j == i+1 && query[j] >= '0' && query[j] <= '9') {
		j++
	}
	if j >= len(query) || query[j] != '$' {
		return i + 1
	}
	tag := query[i : j+1]
	end := strings.Index(query[j+1:], tag)
	if end < 0 {
		return len(query)
	}
	return j + 1 + end + len(tag)
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
