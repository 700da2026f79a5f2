// Package audit is what makes the log prove itself to an auditor: signed
// checkpoints, appended to the log's own stream Stream, that anchor the
// global chain (eventstore.GlobalLink), the head of every stream and, per
// coin, the root of a Merkle sum tree of what the service owes its
// accounts (domain/liability).
//
// It is pure: no I/O, no clock. The caller gives the statement's contents
// and the key; Verify needs only the public keys.
//
// # What a checkpoint states (version 1)
//
// A Statement says: at the event at Position, the Events-th event of the
// log in global order, the global chain's value was GlobalHead; the log
// then held Streams streams whose heads (next revision and newest hash,
// sorted by stream name) have the Merkle root StreamRoot; the liability
// trees had these roots and totals. Number counts checkpoints from 1; Time
// is when it was made; KeyID names the Ed25519 key that signed it.
//
// The signature covers SigningBytes, a length-prefixed binary encoding of
// every field (one encoding per statement), not the JSON form, so it does
// not depend on how a JSON writer orders or spells anything.
//
// # What it proves
//
// A reader holding the public key recomputes the global chain and the
// stream heads from the log and compares them at Position. Any change to
// an event at or before Position — its data, its order, its deletion, the
// deletion of a whole stream, a cut of the log's tail, even with every
// later hash recomputed — changes GlobalHead or StreamRoot, and forging a
// matching statement needs the private key. A checkpoint kept out of band
// (exported to a file) also shows a truncation that removed the
// checkpoint itself from the log.
//
// Events after the newest checkpoint are covered by the chains alone:
// whoever can write the database can rewrite them undetectably until the
// next checkpoint (by default every 10,000 events or 10 minutes).
//
// # The stream root
//
//	leaf  = H(0x00 ‖ lp(stream) ‖ be64(next revision) ‖ head hash)
//	node  = H(0x01 ‖ left ‖ right)
//	empty = H(0x02)
//
// over the streams sorted by name (bytewise), level by level, an odd last
// node carried up unchanged (as in domain/liability, nothing duplicated).
package audit
