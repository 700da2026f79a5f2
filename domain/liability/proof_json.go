package liability

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ProofVersion is the scheme version written in a proof's JSON form.
const ProofVersion = 1

// MaxProofSize bounds the JSON form of a proof ParseProof reads; a proof
// of MaxDepth steps is about 12 KiB.
const MaxProofSize = 64 << 10

// proofJSON is the JSON form of a Proof. Its field order is the order of
// the encoding, which is therefore stable.
type proofJSON struct {
	Version int        `json:"version"`
	Coin    string     `json:"coin"`
	Salt    string     `json:"salt"`
	Balance string     `json:"balance"`
	Path    []stepJSON `json:"path"`
}

type stepJSON struct {
	Side string `json:"side"`
	Hash string `json:"hash"`
	Sum  string `json:"sum"`
}

// MarshalJSON writes the proof as
//
//	{"version":1,"coin":"BTC","salt":"<hex>","balance":"<minor units>",
//	 "path":[{"side":"left","hash":"<hex>","sum":"<minor units>"},...]}
//
// with the fields in this order, lower-case hex and amounts as decimal
// strings (no JSON reader rounds them). Equal proofs encode to equal bytes.
func (p Proof) MarshalJSON() ([]byte, error) {
	w := proofJSON{
		Version: ProofVersion,
		Coin:    p.Coin,
		Salt:    hex.EncodeToString(p.Salt),
		Balance: strconv.FormatInt(p.Balance, 10),
		Path:    make([]stepJSON, len(p.Path)),
	}
	for i, s := range p.Path {
		w.Path[i] = stepJSON{Side: s.Side.String(), Hash: s.Hash.String(), Sum: strconv.FormatInt(s.Sum, 10)}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the form MarshalJSON writes, strictly: unknown
// fields, another version, trailing data, upper-case or odd hex, amounts
// with a sign, leading zeros or out of range, and any field ParseProof's
// checks refuse are errors wrapping ErrInvalidProof.
func (p *Proof) UnmarshalJSON(data []byte) error {
	v, err := decodeProof(data)
	if err != nil {
		return fmt.Errorf("decode liability proof: %w", err)
	}
	*p = v
	return nil
}

// ParseProof reads a proof's JSON form (at most MaxProofSize bytes), as
// UnmarshalJSON does, e.g. from a file handed to the verify-proof command.
func ParseProof(data []byte) (Proof, error) {
	if len(data) > MaxProofSize {
		return Proof{}, fmt.Errorf("parse liability proof: %w", invalid(ErrMalformedProof, "%d bytes, at most %d", len(data), MaxProofSize))
	}
	p, err := decodeProof(data)
	if err != nil {
		return Proof{}, fmt.Errorf("parse liability proof: %w", err)
	}
	return p, nil
}

func decodeProof(data []byte) (Proof, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w proofJSON
	if err := dec.Decode(&w); err != nil {
		return Proof{}, invalid(ErrMalformedProof, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Proof{}, invalid(ErrMalformedProof, "data after the proof")
	}
	if w.Version != ProofVersion {
		return Proof{}, invalid(ErrMalformedProof, "version %d, want %d", w.Version, ProofVersion)
	}
	if len(w.Path) > MaxDepth {
		return Proof{}, invalid(ErrMalformedProof, "path of %d steps, at most %d", len(w.Path), MaxDepth)
	}
	p := Proof{Coin: w.Coin}
	if len(w.Salt)%2 != 0 || lowerHex(w.Salt) != nil {
		return Proof{}, invalid(ErrMalformedProof, "salt: want lower-case hex")
	}
	p.Salt, _ = hex.DecodeString(w.Salt)
	var err error
	if p.Balance, err = parseUnits(w.Balance); err != nil {
		return Proof{}, fmt.Errorf("balance: %w", err)
	}
	for i, s := range w.Path {
		var st Step
		switch s.Side {
		case "left":
			st.Side = Left
		case "right":
			st.Side = Right
		default:
			return Proof{}, invalid(ErrMalformedProof, "step %d: side %q, want left or right", i, s.Side)
		}
		if st.Hash, err = ParseHash(s.Hash); err != nil {
			return Proof{}, invalid(ErrMalformedProof, "step %d: %v", i, err)
		}
		if st.Sum, err = parseUnits(s.Sum); err != nil {
			return Proof{}, fmt.Errorf("step %d: sum: %w", i, err)
		}
		p.Path = append(p.Path, st)
	}
	if err := p.check(); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// parseUnits reads a non-negative count of minor units written in decimal
// without sign or leading zeros ("0", "150000"): one spelling per value.
func parseUnits(s string) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, invalid(ErrNegativeBalance, "amount %.24q", s)
	}
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, invalid(ErrMalformedProof, "amount %.24q: want minor units in decimal", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, invalid(ErrMalformedProof, "amount %.24q: want minor units in decimal", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalid(ErrOverflow, "amount %.24q", s)
	}
	return v, nil
}
