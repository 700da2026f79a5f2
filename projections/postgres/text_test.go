package postgres

import (
	"database/sql"
	"strings"
	"testing"
	"unicode/utf8"
)

// accepted reports whether Postgres text takes s: valid UTF-8 without NUL.
func accepted(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"é€😀 \uFFFD \uFDD1", "é€😀 \uFFFD \uFDD1"}, // valid text, other noncharacters: unchanged
		{"a\x00b", "a\uFDD000b"},
		{"bad \xff", "bad \uFDD0FF"},
		{"cut \xe2\x82", "cut \uFDD0E2\uFDD082"},
		{"\uFDD0", "\uFDD0EF\uFDD0B7\uFDD090"},
		{"\uFDD000", "\uFDD0EF\uFDD0B7\uFDD09000"},
	}
	for _, tc := range tests {
		got := escapeText(tc.in)
		if got != tc.want {
			t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !accepted(got) {
			t.Errorf("escapeText(%q) = %q: Postgres refuses it", tc.in, got)
		}
		if back := unescapeText(got); back != tc.in {
			t.Errorf("unescapeText(escapeText(%q)) = %q", tc.in, back)
		}
		if needsEscape(tc.in) != (got != tc.in) {
			t.Errorf("needsEscape(%q) = %v, but escapeText changes it: %v", tc.in, needsEscape(tc.in), got != tc.in)
		}
	}
	// Stored text that escapeText did not write is read as it is.
	for _, s := range []string{"\uFDD0", "x\uFDD0z", "\uFDD0F", "\uFDD0fF"} {
		if got := unescapeText(s); got != s {
			t.Errorf("unescapeText(%q) = %q, want it unchanged", s, got)
		}
	}
}

func FuzzEscapeText(f *testing.F) {
	for _, s := range []string{"", "a\x00b", "\xff\xfe", "\uFDD0", "\uFDD000", "é\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escapeText(s)
		if !accepted(e) {
			t.Fatalf("escapeText(%q) = %q: Postgres refuses it", s, e)
		}
		if back := unescapeText(e); back != s {
			t.Fatalf("unescapeText(escapeText(%q)) = %q", s, back)
		}
		if accepted(s) && !strings.Contains(s, escChar) && e != s {
			t.Fatalf("escapeText changed acceptable text %q to %q", s, e)
		}
	})
}

type name string

func TestEscapeArgsAndDest(t *testing.T) {
	bad := "a\x00b"
	args := []any{int64(1), bad, &bad, sql.NullString{String: bad, Valid: true}, name(bad), []byte(bad), nil, "ok"}
	out, changed := escapeArgs(args)
	if !changed {
		t.Fatal("escapeArgs changed nothing")
	}
	if args[1] != bad || *args[2].(*string) != bad {
		t.Error("escapeArgs modified its argument")
	}
	esc := escapeText(bad)
	if out[1] != esc || *out[2].(*string) != esc || out[3].(sql.NullString).String != esc || out[4] != esc {
		t.Errorf("escaped args %q", out)
	}
	if string(out[5].([]byte)) != bad {
		t.Error("bytes were escaped: they go to BYTEA")
	}
	if plain := []any{int64(1), "ok", name("ok")}; func() bool { _, c := escapeArgs(plain); return c }() {
		t.Error("escapeArgs changed plain args")
	}

	var s string
	var ns sql.NullString
	var ps *string
	var n name
	var a any
	var i int64
	dest := []any{&s, &ns, &ps, &n, &a, &i}
	s, ns, n, a, i = esc, sql.NullString{String: esc, Valid: true}, name(esc), esc, 7
	ps = &esc
	unescapeDest(dest)
	if s != bad || ns.String != bad || *ps != bad || n != name(bad) || a != bad || i != 7 {
		t.Errorf("unescaped %q %q %q %q %q %d", s, ns.String, *ps, n, a, i)
	}
	if esc != escapeText(bad) {
		t.Error("unescapeDest wrote through a **string into the string it pointed to")
	}
}

// TestCleanTextCostsNothing checks that text needing no escape, the common
// case on every statement and scan, passes through without an allocation.
func TestCleanTextCostsNothing(t *testing.T) {
	args := []any{int64(1), "plain", "é€😀", name("x"), sql.NullString{String: "y", Valid: true}, nil}
	if n := testing.AllocsPerRun(100, func() { _ = text(args) }); n != 0 {
		t.Errorf("escaping clean parameters: %v allocations, want 0", n)
	}
	s, str, ns, n := "plain", "é€😀", sql.NullString{String: "y", Valid: true}, name("x")
	ps, a := &s, any("plain")
	dest := []any{&str, &ps, &a, &ns, &n}
	if n := testing.AllocsPerRun(100, func() { unescapeDest(dest) }); n != 0 {
		t.Errorf("unescaping clean destinations: %v allocations, want 0", n)
	}
}
