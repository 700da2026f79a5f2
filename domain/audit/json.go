package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/domain/liability"
)

// MaxCheckpointSize bounds the JSON form ParseCheckpoint reads.
const MaxCheckpointSize = 1 << 20

// checkpointJSON is the JSON form of a Checkpoint (the data of its event
// and what the API serves): amounts as decimal strings of minor units,
// hashes in hex, the signature in base64.
type checkpointJSON struct {
	Number      uint64     `json:"number"`
	Position    uint64     `json:"position"`
	Events      uint64     `json:"events"`
	GlobalHead  Hash       `json:"global_head"`
	Streams     uint64     `json:"streams"`
	StreamRoot  Hash       `json:"stream_root"`
	Liabilities []rootJSON `json:"liabilities"`
	Time        time.Time  `json:"time"`
	KeyID       string     `json:"key_id"`
	Signature   []byte     `json:"signature"`
}

type rootJSON struct {
	Coin  string `json:"coin"`
	Root  Hash   `json:"root"`
	Total string `json:"total"`
}

// MarshalJSON writes c in its JSON form.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	roots := make([]rootJSON, len(c.Liabilities))
	for i, r := range c.Liabilities {
		roots[i] = rootJSON{Coin: r.Coin, Root: r.Hash, Total: strconv.FormatInt(r.Total, 10)}
	}
	return json.Marshal(checkpointJSON{
		Number: c.Number, Position: c.Position, Events: c.Events, GlobalHead: c.GlobalHead,
		Streams: c.Streams, StreamRoot: c.StreamRoot, Liabilities: roots, Time: c.Time,
		KeyID: c.KeyID, Signature: c.Signature,
	})
}

// UnmarshalJSON reads c strictly (ParseCheckpoint).
func (c *Checkpoint) UnmarshalJSON(data []byte) error {
	v, err := ParseCheckpoint(data)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCheckpoint reads the JSON form of a checkpoint: unknown fields, a
// malformed amount or a signature of the wrong size are refused. It does
// not verify the signature.
func ParseCheckpoint(data []byte) (Checkpoint, error) {
	if len(data) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %d bytes, at most %d", len(data), MaxCheckpointSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v checkpointJSON
	if err := dec.Decode(&v); err != nil {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	if dec.More() {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: data after the object")
	}
	if len(v.Signature) != 64 {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: signature of %d bytes, want 64", len(v.Signature))
	}
	c := Checkpoint{Statement: Statement{
		Number: v.Number, Position: v.Position, Events: v.Events, GlobalHead: v.GlobalHead,
		Streams: v.Streams, StreamRoot: v.StreamRoot, Time: v.Time, KeyID: v.KeyID,
	}, Signature: v.Signature}
	for _, r := range v.Liabilities {
		total, err := strconv.ParseInt(r.Total, 10, 64)
		if err != nil || total < 0 || strconv.FormatInt(total, 10) != r.Total {
			return Checkpoint{}, fmt.Errorf("parse checkpoint: total %.24q of %s: want non-negative minor units in decimal", r.Total, r.Coin)
		}
		c.Liabilities = append(c.Liabilities, liability.Root{Coin: r.Coin, Hash: r.Root, Total: total})
	}
	return c, nil
}
