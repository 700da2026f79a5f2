package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/coinledger/coinledger/domain/money"
)

// amountFields are the top-level members of ledger event data that hold
// amounts in minor units (besides each posting's amount).
var amountFields = []string{"amount", "fee", "fee_shortfall", "shortfall"}

// Outward returns data, the stored JSON of a ledger event of a wallet whose
// coin is asset, as the service shows it to the outside (websocket, server-
// sent events, /events, webhooks): every amount (the members amount, fee,
// fee_shortfall and shortfall, and each posting's amount) an exact decimal
// string with the coin's decimals, as the REST API writes amounts
// ("0.50000000"). Other members are kept as they are. Data that is not a
// JSON object is returned unchanged; an amount that is not an integer is
// an error.
func Outward(data []byte, asset money.Asset) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(data)) == 0 || data[0] != '{' || json.Unmarshal(data, &m) != nil {
		return data, nil
	}
	changed := false
	for _, f := range amountFields {
		v, ok := m[f]
		if !ok {
			continue
		}
		s, err := decimal(v, asset)
		if err != nil {
			return nil, fmt.Errorf("outward %s: %w", f, err)
		}
		m[f], changed = s, true
	}
	if raw, ok := m["postings"]; ok {
		var ps []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, fmt.Errorf("outward postings: %w", err)
		}
		for i, p := range ps {
			if v, ok := p["amount"]; ok {
				s, err := decimal(v, asset)
				if err != nil {
					return nil, fmt.Errorf("outward postings[%d].amount: %w", i, err)
				}
				p["amount"] = s
			}
		}
		b, err := json.Marshal(ps)
		if err != nil {
			return nil, fmt.Errorf("outward postings: %w", err)
		}
		m["postings"], changed = b, true
	}
	if !changed {
		return data, nil
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("outward: %w", err)
	}
	return out, nil
}

// decimal turns a JSON integer of minor units into the JSON string of the
// amount; a string is kept (already outward).
func decimal(v json.RawMessage, asset money.Asset) (json.RawMessage, error) {
	if len(v) > 0 && v[0] == '"' {
		return v, nil
	}
	units, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s is not an integer amount", clip(string(v)))
	}
	return json.Marshal(money.New(asset, units).String())
}
