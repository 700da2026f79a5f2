package liability

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// cloneProof returns a deep copy of p.
func cloneProof(p Proof) Proof {
	p.Salt = slices.Clone(p.Salt)
	p.Path = slices.Clone(p.Path)
	return p
}

func TestVerifyRefusesTampering(t *testing.T) {
	es := entries(t, "BTC", 7)
	tree := mustBuild(t, "BTC", es)
	root := tree.Root()
	// An account whose leaf has a leaf sibling, a path of three steps and
	// a non-zero balance, so that every mutation below changes something.
	var acct string
	var proof Proof
	for _, e := range es {
		p, err := tree.Proof(e.Account)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Path) == 3 && p.Balance > 0 && p.Path[0].Sum > 0 {
			acct, proof = e.Account, p
			break
		}
	}
	if acct == "" {
		t.Fatal("no account with a three-step path, a balance and a funded sibling")
	}
	if err := Verify(proof, root, acct); err != nil {
		t.Fatalf("untouched proof: %v", err)
	}
	other := es[0].Account
	if other == acct {
		other = es[1].Account
	}

	tests := []struct {
		name    string
		proof   func(*Proof)
		root    func(*Root)
		account string
		want    error
	}{
		{name: "balance up", proof: func(p *Proof) { p.Balance++ }, want: ErrRootHashMismatch},
		{name: "balance down", proof: func(p *Proof) { p.Balance-- }, want: ErrRootHashMismatch},
		{name: "balance negative", proof: func(p *Proof) { p.Balance = -p.Balance }, want: ErrNegativeBalance},
		{name: "balance up, sibling sum down by as much", proof: func(p *Proof) { p.Balance++; p.Path[0].Sum-- }, want: ErrRootHashMismatch},
		{name: "sibling sum up", proof: func(p *Proof) { p.Path[1].Sum++ }, want: ErrRootHashMismatch},
		{name: "sibling sum down", proof: func(p *Proof) { p.Path[0].Sum-- }, want: ErrRootHashMismatch},
		{name: "sibling sum negative", proof: func(p *Proof) { p.Path[2].Sum = -1 }, want: ErrNegativeBalance},
		{name: "sibling sum overflows", proof: func(p *Proof) { p.Path[2].Sum = math.MaxInt64 }, want: ErrOverflow},
		{name: "sibling hash first step", proof: func(p *Proof) { p.Path[0].Hash[0] ^= 1 }, want: ErrRootHashMismatch},
		{name: "sibling hash last step", proof: func(p *Proof) { p.Path[2].Hash[31] ^= 0x80 }, want: ErrRootHashMismatch},
		{name: "side flipped first step", proof: func(p *Proof) { p.Path[0].Side = 3 - p.Path[0].Side }, want: ErrRootHashMismatch},
		{name: "side flipped last step", proof: func(p *Proof) { p.Path[2].Side = 3 - p.Path[2].Side }, want: ErrRootHashMismatch},
		{name: "side missing", proof: func(p *Proof) { p.Path[1].Side = 0 }, want: ErrMalformedProof},
		{name: "path without its last step", proof: func(p *Proof) { p.Path = p.Path[:2] }, want: ErrRootHashMismatch},
		{name: "path without its first step", proof: func(p *Proof) { p.Path = p.Path[1:] }, want: ErrRootHashMismatch},
		{name: "path with a step more", proof: func(p *Proof) { p.Path = append(p.Path, Step{Side: Right, Hash: root.Hash}) }, want: ErrRootHashMismatch},
		{name: "path empty", proof: func(p *Proof) { p.Path = nil }, want: ErrRootHashMismatch},
		{name: "path too long", proof: func(p *Proof) { p.Path = make([]Step, MaxDepth+1) }, want: ErrMalformedProof},
		{name: "salt", proof: func(p *Proof) { p.Salt[0] ^= 1 }, want: ErrRootHashMismatch},
		{name: "salt too short", proof: func(p *Proof) { p.Salt = p.Salt[:MinSaltSize-1] }, want: ErrMalformedProof},
		{name: "coin of the proof", proof: func(p *Proof) { p.Coin = "ETH" }, want: ErrCoinMismatch},
		{name: "coin of proof and root", proof: func(p *Proof) { p.Coin = "ETH" }, root: func(r *Root) { r.Coin = "ETH" }, want: ErrRootHashMismatch},
		{name: "root total up", root: func(r *Root) { r.Total++ }, want: ErrRootTotalMismatch},
		{name: "root total down", root: func(r *Root) { r.Total-- }, want: ErrRootTotalMismatch},
		{name: "root total negative", root: func(r *Root) { r.Total = -1 }, want: ErrNegativeBalance},
		{name: "root hash", root: func(r *Root) { r.Hash[5] ^= 1 }, want: ErrRootHashMismatch},
		{name: "another account's id", account: other, want: ErrRootHashMismatch},
		{name: "account id of one NUL byte", account: "\x00", want: ErrRootHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, r, a := cloneProof(proof), root, acct
			if tt.proof != nil {
				tt.proof(&p)
			}
			if tt.root != nil {
				tt.root(&r)
			}
			if tt.account != "" {
				a = tt.account
			}
			err := Verify(p, r, a)
			if !errors.Is(err, ErrInvalidProof) || !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v; want ErrInvalidProof and %v", err, tt.want)
			}
		})
	}
}

func TestVerifyRefusesEmptyAccountID(t *testing.T) {
	tree := mustBuild(t, "BTC", entries(t, "BTC", 2))
	p, err := tree.Proof("w/a0")
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, tree.Root(), ""); !errors.Is(err, ErrMalformedProof) {
		t.Fatalf("Verify with no account id: %v", err)
	}
}

func TestVerifyAgainstAnotherRoot(t *testing.T) {
	es := entries(t, "BTC", 7)
	tree := mustBuild(t, "BTC", es)
	p, err := tree.Proof(es[3].Account)
	if err != nil {
		t.Fatal(err)
	}
	// The next checkpoint: one other account's balance moved.
	later := append([]Entry(nil), es...)
	later[5].Balance += 10
	// The same accounts and balances with other salts.
	resalted := append([]Entry(nil), es...)
	for i := range resalted {
		resalted[i].Salt, _ = DeriveSalt(testSecret, 2, "BTC", resalted[i].Account)
	}
	// Another coin's tree with the same balances.
	ethTree := mustBuild(t, "ETH", entries(t, "ETH", 7))
	ethProof, err := ethTree.Proof(es[3].Account)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		proof Proof
		root  Root
		want  error
	}{
		{"later checkpoint", p, mustBuild(t, "BTC", later).Root(), ErrRootHashMismatch},
		{"other salts", p, mustBuild(t, "BTC", resalted).Root(), ErrRootHashMismatch},
		{"one account fewer", p, mustBuild(t, "BTC", slices.Delete(slices.Clone(es), 0, 1)).Root(), ErrRootHashMismatch},
		{"other coin's root", p, ethTree.Root(), ErrCoinMismatch},
		{"other coin's proof", ethProof, tree.Root(), ErrCoinMismatch},
		{"other coin's proof relabelled", func() Proof { q := cloneProof(ethProof); q.Coin = "BTC"; return q }(), tree.Root(), ErrRootHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.proof, tt.root, es[3].Account); !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v; want %v", err, tt.want)
			}
		})
	}
}

// TestMaxwellMaxAttackDetected replays the attack of Hu, Zhang and Guo on
// Maxwell's tree: for two leaves holding a and b the operator publishes
// max(a, b) as the total and shows each user the sibling sum that makes
// their own path add up to it. Because a node hashes both child sums, the
// two users cannot both verify.
func TestMaxwellMaxAttackDetected(t *testing.T) {
	const a, b = 300, 500
	ca, cb := commitment("BTC", "w/a", mustSalt(t, "BTC", "w/a")), commitment("BTC", "w/b", mustSalt(t, "BTC", "w/b"))
	la, lb := leafHash(ca, a), leafHash(cb, b)
	proofA := Proof{Coin: "BTC", Salt: mustSalt(t, "BTC", "w/a"), Balance: a, Path: []Step{{Side: Right, Hash: lb, Sum: max(a, b) - a}}}
	proofB := Proof{Coin: "BTC", Salt: mustSalt(t, "BTC", "w/b"), Balance: b, Path: []Step{{Side: Left, Hash: la, Sum: max(a, b) - b}}}
	// Whatever node hash the operator publishes with total max(a, b), at
	// most one of the two proofs verifies.
	for _, h := range []Hash{
		nodeHash(la, a, lb, max(a, b)-a), // made for a's proof
		nodeHash(la, max(a, b)-b, lb, b), // made for b's proof
		nodeHash(la, a, lb, b),           // the honest node
	} {
		root := Root{Coin: "BTC", Hash: h, Total: max(a, b)}
		errA, errB := Verify(proofA, root, "w/a"), Verify(proofB, root, "w/b")
		if errA == nil && errB == nil {
			t.Fatalf("both users verify a total of %d for balances %d and %d", max(a, b), a, b)
		}
	}
}

// TestNegativeLeafCannotHideLiabilities builds by hand the tree Build
// refuses: a user's leaf beside a fake account of -X, or beside a sum
// chosen to wrap around. The user's proof is refused.
func TestNegativeLeafCannotHideLiabilities(t *testing.T) {
	salt := mustSalt(t, "BTC", "w/user")
	user := leafHash(commitment("BTC", "w/user", salt), 1000)
	fake := leafHash(commitment("BTC", "w/fake", mustSalt(t, "BTC", "w/fake")), -900)
	for _, tt := range []struct {
		name    string
		sibling int64
		total   int64 // the published total the operator wants
		want    error
	}{
		{"negative sibling", -900, 100, ErrNegativeBalance},
		// 1000 + MaxInt64 - 50 does not fit in int64: a verifier that let
		// it wrap would fold a sum that has nothing to do with the leaves.
		{"sibling that wraps the sum around", math.MaxInt64 - 50, 100, ErrOverflow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := Root{Coin: "BTC", Hash: nodeHash(user, 1000, fake, tt.sibling), Total: tt.total}
			p := Proof{Coin: "BTC", Salt: salt, Balance: 1000, Path: []Step{{Side: Right, Hash: fake, Sum: tt.sibling}}}
			if err := Verify(p, root, "w/user"); !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v; want %v", err, tt.want)
			}
		})
	}
}
