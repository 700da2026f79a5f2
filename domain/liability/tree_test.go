package liability

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// testSecret is the salt secret of the tests' trees.
var testSecret = []byte("coinledger liability test secret, 32+ bytes long")

// mustSalt derives the salt of account at checkpoint 1.
func mustSalt(tb testing.TB, coin, account string) []byte {
	tb.Helper()
	s, err := DeriveSalt(testSecret, 1, coin, account)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// entries returns n accounts "w/a<i>" of coin with varied balances (some
// zero).
func entries(tb testing.TB, coin string, n int) []Entry {
	tb.Helper()
	out := make([]Entry, n)
	for i := range out {
		acct := fmt.Sprintf("w/a%d", i)
		out[i] = Entry{Account: acct, Salt: mustSalt(tb, coin, acct), Balance: int64(i%5) * 150_000 * int64(i+1)}
	}
	return out
}

// mustBuild builds coin's tree of es.
func mustBuild(tb testing.TB, coin string, es []Entry) *Tree {
	tb.Helper()
	t, err := Build(coin, es)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func TestBuildProofVerifyRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			es := entries(t, "BTC", n)
			tree := mustBuild(t, "BTC", es)
			root := tree.Root()
			var total int64
			for _, e := range es {
				total += e.Balance
			}
			if root.Total != total || root.Coin != "BTC" || tree.Len() != n {
				t.Fatalf("root %+v, len %d; want total %d of %d accounts", root, tree.Len(), total, n)
			}
			maxDepth := bits.Len(uint(n - 1)) // ceil(log2 n)
			for _, e := range es {
				p, err := tree.Proof(e.Account)
				if err != nil {
					t.Fatal(err)
				}
				if p.Balance != e.Balance {
					t.Fatalf("%s: proof balance %d, want %d", e.Account, p.Balance, e.Balance)
				}
				if len(p.Path) > maxDepth {
					t.Fatalf("%s: path of %d steps, want at most %d", e.Account, len(p.Path), maxDepth)
				}
				if err := Verify(p, root, e.Account); err != nil {
					t.Fatalf("%s: %v", e.Account, err)
				}
			}
		})
	}
}

func TestBuildIgnoresEntryOrder(t *testing.T) {
	es := entries(t, "BTC", 33)
	want := mustBuild(t, "BTC", es).Root()
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		if got := mustBuild(t, "BTC", es).Root(); got != want {
			t.Fatalf("shuffled entries: root %+v, want %+v", got, want)
		}
	}
}

func TestBuildCopiesSalts(t *testing.T) {
	es := entries(t, "BTC", 3)
	tree := mustBuild(t, "BTC", es)
	es[0].Salt[0] ^= 0xff
	p, err := tree.Proof(es[0].Account)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, tree.Root(), es[0].Account); err != nil {
		t.Fatalf("caller changed a salt after Build: %v", err)
	}
}

func TestRootCommitsToEveryBalance(t *testing.T) {
	es := entries(t, "BTC", 7)
	want := mustBuild(t, "BTC", es).Root()
	for i := range es {
		changed := append([]Entry(nil), es...)
		changed[i].Balance++
		got := mustBuild(t, "BTC", changed).Root()
		if got.Hash == want.Hash {
			t.Errorf("balance of %s + 1: root hash unchanged", es[i].Account)
		}
		if got.Total != want.Total+1 {
			t.Errorf("balance of %s + 1: total %d, want %d", es[i].Account, got.Total, want.Total+1)
		}
	}
}

func TestBuildAcceptsTotalOfMaxInt64(t *testing.T) {
	es := []Entry{
		{Account: "w/a", Salt: mustSalt(t, "BTC", "w/a"), Balance: math.MaxInt64 - 1},
		{Account: "w/b", Salt: mustSalt(t, "BTC", "w/b"), Balance: 1},
	}
	tree := mustBuild(t, "BTC", es)
	if tree.Root().Total != math.MaxInt64 {
		t.Fatalf("total %d", tree.Root().Total)
	}
	for _, e := range es {
		p, err := tree.Proof(e.Account)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(p, tree.Root(), e.Account); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	salt := mustSalt(t, "BTC", "w/a")
	ok := Entry{Account: "w/ok", Salt: mustSalt(t, "BTC", "w/ok"), Balance: 5}
	tests := []struct {
		name    string
		coin    string
		entries []Entry
		want    error
	}{
		{"negative balance", "BTC", []Entry{ok, {Account: "w/a", Salt: salt, Balance: -1}}, ErrNegativeBalance},
		{"most negative balance", "BTC", []Entry{{Account: "w/a", Salt: salt, Balance: math.MinInt64}}, ErrNegativeBalance},
		{"overflowing total", "BTC", []Entry{ok, {Account: "w/a", Salt: salt, Balance: math.MaxInt64 - 4}}, ErrOverflow},
		{"overflow of two max balances", "BTC", []Entry{
			{Account: "w/a", Salt: salt, Balance: math.MaxInt64},
			{Account: "w/b", Salt: salt, Balance: math.MaxInt64},
		}, ErrOverflow},
		{"account twice", "BTC", []Entry{ok, {Account: "w/ok", Salt: salt, Balance: 1}}, ErrDuplicateAccount},
		{"empty account id", "BTC", []Entry{{Account: "", Salt: salt, Balance: 1}}, ErrInvalidAccount},
		{"short salt", "BTC", []Entry{{Account: "w/a", Salt: salt[:MinSaltSize-1], Balance: 1}}, ErrInvalidSalt},
		{"long salt", "BTC", []Entry{{Account: "w/a", Salt: make([]byte, MaxSaltSize+1), Balance: 1}}, ErrInvalidSalt},
		{"no salt", "BTC", []Entry{{Account: "w/a", Balance: 1}}, ErrInvalidSalt},
		{"empty coin", "", []Entry{ok}, ErrInvalidCoin},
		{"long coin", string(make([]byte, MaxCoinSize+1)), []Entry{ok}, ErrInvalidCoin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := Build(tt.coin, tt.entries)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Build: tree %v, error %v; want %v", tree, err, tt.want)
			}
		})
	}
}

func TestEmptyTree(t *testing.T) {
	tree := mustBuild(t, "BTC", nil)
	root := tree.Root()
	if root.Total != 0 || root.Hash != emptyHash("BTC") || root.Hash == emptyHash("ETH") {
		t.Fatalf("empty root %+v", root)
	}
	if _, err := tree.Proof("w/a"); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("Proof in an empty tree: %v", err)
	}
}

func TestProofOfUnknownAccount(t *testing.T) {
	tree := mustBuild(t, "BTC", entries(t, "BTC", 3))
	if _, err := tree.Proof("w/nobody"); !errors.Is(err, ErrUnknownAccount) {
		t.Fatalf("got %v, want ErrUnknownAccount", err)
	}
}

func TestDeriveSalt(t *testing.T) {
	a := mustSalt(t, "BTC", "w/a")
	if len(a) != sha256.Size {
		t.Fatalf("salt of %d bytes", len(a))
	}
	for _, other := range [][]byte{
		mustSalt(t, "BTC", "w/b"),
		mustSalt(t, "ETH", "w/a"),
		func() []byte { s, _ := DeriveSalt(testSecret, 2, "BTC", "w/a"); return s }(),
		// lp() keeps coin and account apart: "BTC"+"w/a" is not "BTCw"+"/a".
		func() []byte { s, _ := DeriveSalt(testSecret, 1, "BTCw", "/a"); return s }(),
	} {
		if string(other) == string(a) {
			t.Fatalf("two inputs derive one salt %x", a)
		}
	}
	if _, err := DeriveSalt(testSecret[:MinSecretSize-1], 1, "BTC", "w/a"); !errors.Is(err, ErrInvalidSalt) {
		t.Fatalf("short secret: %v", err)
	}
}
