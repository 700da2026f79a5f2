// Package liability builds and verifies proofs of liabilities: a Merkle sum
// tree over what the service owes each account in one coin, whose root (a
// hash and a total) is published in a signed audit checkpoint, and the
// inclusion proof with which one user checks, without seeing anyone else's
// account, that their balance is counted in that total.
//
// It is pure: no I/O, no clock, no randomness. The caller chooses the
// accounts and their balances at a checkpoint, and the salts (DeriveSalt
// makes them from one secret, so nothing per account has to be stored).
//
// # Scheme (version 1)
//
// H is SHA-256, be64(x) the 8 bytes of x big-endian, lp(x) the 4-byte
// big-endian length of x followed by x. Amounts are int64 minor units and
// never negative.
//
//	commitment = H(0x02 ‖ lp(coin) ‖ lp(account) ‖ lp(salt))
//	leaf       = H(0x00 ‖ commitment ‖ be64(balance))                      sum = balance
//	node       = H(0x01 ‖ left.hash ‖ be64(left.sum) ‖ right.hash ‖ be64(right.sum))
//	                                                                       sum = left.sum + right.sum
//	empty tree = H(0x03 ‖ lp(coin))                                        total = 0
//
// The one-byte prefixes separate the kinds of hash: a leaf can never be
// read as an inner node or the reverse (the second-preimage trick on
// Merkle trees), and an account commitment is neither. The coin is inside
// every commitment, so a proof for one coin does not verify under another
// coin's root.
//
// Leaves are sorted by commitment. The salt is secret, so the commitment
// looks random and a leaf's position says nothing about its account id or
// balance. The tree is built level by level, pairing neighbours; when a
// level has an odd number of nodes the last one is carried up to the next
// level unchanged. Nothing is padded: there is no fake leaf whose meaning
// must be argued about, and nothing is duplicated (Bitcoin's duplication of
// the last node lets two different leaf lists share one root,
// CVE-2012-2459). Every leaf is a real account and a path has at most
// ceil(log2 n) steps; a path's length and sides reveal the leaf's position
// and roughly the number of accounts, as a padded tree's would.
//
// A proof is the coin, the account's salt and balance, and the path from
// the leaf to the root: for each level where the node has a sibling, the
// sibling's hash and sum and which side it is on. Verify recomputes the
// leaf from the account id the user knows, folds the path, refuses any
// negative amount or overflowing sum, and compares the result with the
// published root hash and total. Amounts in the JSON form (MarshalJSON) are
// decimal strings of minor units, so no JSON reader rounds them, and hashes
// and the salt are lower-case hex.
//
// # What a user learns, and what not
//
// A proof that verifies shows the user that a leaf binding their account
// id and their balance is in the tree whose root the checkpoint signs, and
// that the rest of the tree claims only non-negative sums that add up,
// with theirs, to the published total: their balance is counted in the
// total and nothing in the tree can cancel it. The user compares the
// balance with their own records at the checkpoint's position.
//
// The user does not learn any other account's id: a sibling leaf is a
// salted commitment that cannot be opened or guessed without its salt.
// Salts should differ per checkpoint (DeriveSalt includes the checkpoint)
// so that the same account's leaves cannot be linked from one checkpoint to
// the next.
//
// Known limits of a sum tree, not addressed here:
//
//   - The sibling sums are subtotals of other accounts, and the first one,
//     when the sibling is a leaf, is exactly one other (anonymous) account's
//     balance. Schemes that hide it split each balance into random parts at
//     random positions, or replace sums by Pedersen commitments with range
//     proofs (Provisions, DAPOL+); this package does neither.
//   - Inclusion only: an operator can leave out the accounts of users who
//     never check. Each check catches an omission of that user; the
//     assurance grows with the number of users who verify.
//   - Liabilities only: that the coins exist is a separate proof of
//     reserves (the chain reconciliation of audit verify).
//   - The balance is what the operator says it owes: a user must know their
//     own balance at the checkpoint to notice it is understated.
//
// # Why no amount may be negative
//
// A sibling's sum is opaque to the user: it cannot be opened. If sums could
// be negative, the operator could add one fake account with balance -X and
// hide X of liabilities, and every honest user's proof would still verify.
// Build therefore refuses negative balances (an account in debt owes the
// operator, not the reverse, and is entered as 0) and Verify refuses a
// negative balance or sibling sum in a proof. Overflow is refused as well,
// on both sides: a sum that wraps around is a negative number in disguise
// (two huge sums adding up, modulo 2^64, to a small total). Every sum in a
// tree is at most math.MaxInt64.
//
// # Why each node hashes both child sums
//
// In Maxwell's original summation tree an inner node hashed only its own
// total, H(left.sum + right.sum ‖ left.hash ‖ right.hash), and the sibling
// sums shown in proofs were not bound individually. Hu, Zhang and Guo
// (Breaking the Binding, ePrint 2018/1139) showed the operator can then
// publish max(a, b) instead of a + b for a node whose children hold a and
// b: the left user is shown a sibling sum of max−a, the right user max−b,
// both proofs verify, and the smaller child's liabilities vanish; repeated
// up the tree, a total that counts a single account. Here a node's hash
// covers each child's hash and sum, so both users of a node see the same
// pair of sums, and the sums they add are the sums the root commits to.
package liability
