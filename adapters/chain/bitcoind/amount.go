package bitcoind

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
)

// satoshiPerCoin: amounts on the wire are in coins with 8 decimals.
const satoshiPerCoin = 100_000_000

// decimal is the shape of a JSON number (exponent bounded).
var decimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$`)

// satoshis converts an amount in coins as the node wrote it to satoshis,
// exactly: bitcoind writes fixed 8 decimals ("0.00012345"), btcwallet Go
// floats ("1.2345e-04"). The decimal is read as a fraction, not a float,
// and rounded to the nearest satoshi, half away from zero (as
// btcutil.NewAmount rounds).
func satoshis(n json.Number) (int64, error) {
	s := string(n)
	if !decimal.MatchString(s) {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("amount %q is not a decimal number", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(satoshiPerCoin))
	q, rem := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		twice := new(big.Int).Lsh(new(big.Int).Abs(rem), 1)
		if twice.Cmp(r.Denom()) >= 0 {
			q.Add(q, big.NewInt(int64(r.Sign())))
		}
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("amount %q out of range", s)
	}
	return q.Int64(), nil
}

// coins writes satoshis as an amount in coins with 8 decimals
// (12345 → 0.00012345), which every node parses exactly.
func coins(sat int64) json.Number {
	sign := ""
	if sat < 0 {
		sign, sat = "-", -sat
	}
	return json.Number(fmt.Sprintf("%s%d.%08d", sign, sat/satoshiPerCoin, sat%satoshiPerCoin))
}
