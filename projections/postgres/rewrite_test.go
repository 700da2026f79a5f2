package postgres

import "testing"

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{`INSERT INTO t VALUES (?,?),(?,?)`, `INSERT INTO t VALUES ($1,$2),($3,$4)`},
		{`SELECT '?', ? FROM t`, `SELECT '?', $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
		{`SELECT "we?ird", ?`, `SELECT "we?ird", $1`},
		{"SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2"},
		{`SELECT /* ? */ ?`, `SELECT /* ? */ $1`},
		{`SELECT $$ ? $$, ?`, `SELECT $$ ? $$, $1`},
		{`SELECT $q$ ? $q$, ?`, `SELECT $q$ ? $q$, $1`},
		{`SELECT $1, ?`, `SELECT $1, $1`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
	}
	for _, tc := range tests {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRewriterCaches(t *testing.T) {
	var r rewriter
	q := `SELECT ? + ?`
	if got := r.rewrite(q); got != `SELECT $1 + $2` {
		t.Fatal(got)
	}
	if _, ok := r.cache[q]; !ok {
		t.Error("rewrite was not cached")
	}
	if got := r.rewrite(q); got != `SELECT $1 + $2` {
		t.Fatal(got)
	}
}
