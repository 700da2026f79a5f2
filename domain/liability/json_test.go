package liability

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestProofJSONRoundTrip(t *testing.T) {
	es := entries(t, "BTC", 7)
	tree := mustBuild(t, "BTC", es)
	for _, e := range es {
		p, err := tree.Proof(e.Account)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseProof(data)
		if err != nil {
			t.Fatalf("%s: ParseProof(%s): %v", e.Account, data, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", e.Account, got, p)
		}
		var viaUnmarshal Proof
		if err := json.Unmarshal(data, &viaUnmarshal); err != nil || !reflect.DeepEqual(viaUnmarshal, p) {
			t.Fatalf("%s: json.Unmarshal: %+v, %v", e.Account, viaUnmarshal, err)
		}
		again, err := json.Marshal(got)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%s: encoding not stable:\n%s\n%s (%v)", e.Account, data, again, err)
		}
		if err := Verify(got, tree.Root(), e.Account); err != nil {
			t.Fatalf("%s: decoded proof: %v", e.Account, err)
		}
	}
}

// TestProofJSONForm pins the encoding: field names and order, lower-case
// hex, amounts as strings, an empty path as [].
func TestProofJSONForm(t *testing.T) {
	var h Hash
	for i := range h {
		h[i] = byte(i)
	}
	salt := bytes.Repeat([]byte{0xab}, 16)
	tests := []struct {
		proof Proof
		want  string
	}{
		{Proof{Coin: "BTC", Salt: salt, Balance: 150000, Path: []Step{{Side: Left, Hash: h, Sum: 9007199254740993}, {Side: Right, Hash: h, Sum: 0}}},
			`{"version":1,"coin":"BTC","salt":"abababababababababababababababab","balance":"150000","path":[` +
				`{"side":"left","hash":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","sum":"9007199254740993"},` +
				`{"side":"right","hash":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","sum":"0"}]}`},
		{Proof{Coin: "BTC", Salt: salt, Balance: 0},
			`{"version":1,"coin":"BTC","salt":"abababababababababababababababab","balance":"0","path":[]}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.proof)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("Marshal\n got %s\nwant %s", got, tt.want)
		}
	}
}

func TestParseProofRefuses(t *testing.T) {
	tree := mustBuild(t, "BTC", entries(t, "BTC", 3))
	p, err := tree.Proof("w/a1")
	if err != nil {
		t.Fatal(err)
	}
	valid, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	hash := p.Path[0].Hash.String()
	sum := `"sum":"` + itoa(p.Path[0].Sum) + `"`
	salt := hex.EncodeToString(p.Salt)
	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(string(valid), old) {
			t.Fatalf("%s not in %s", old, valid)
		}
		return strings.Replace(string(valid), old, new, 1)
	}
	tests := []struct {
		name string
		data string
		want error
	}{
		{"not JSON", "proof", ErrMalformedProof},
		{"null", "null", ErrMalformedProof},
		{"empty object", "{}", ErrMalformedProof},
		{"unknown field", edit(`"version":1`, `"version":1,"leaf":"00"`), ErrMalformedProof},
		{"other version", edit(`"version":1`, `"version":2`), ErrMalformedProof},
		{"trailing data", string(valid) + "{}", ErrMalformedProof},
		{"upper-case hash", edit(hash, strings.ToUpper(hash)), ErrMalformedProof},
		{"short hash", edit(hash, hash[2:]), ErrMalformedProof},
		{"salt odd hex", edit(`"salt":"`, `"salt":"0`), ErrMalformedProof},
		{"salt upper-case", edit(`"salt":"`+salt, `"salt":"`+strings.ToUpper(salt)), ErrMalformedProof},
		{"salt empty", edit(`"salt":"`+salt, `"salt":"`), ErrMalformedProof},
		{"balance negative", edit(`"balance":"`, `"balance":"-`), ErrNegativeBalance},
		{"balance with plus", edit(`"balance":"`, `"balance":"+`), ErrMalformedProof},
		{"balance leading zero", edit(`"balance":"`, `"balance":"0`), ErrMalformedProof},
		{"balance number", edit(`"balance":"`+itoa(p.Balance)+`"`, `"balance":`+itoa(p.Balance)), ErrMalformedProof},
		{"balance decimal", edit(`"balance":"`+itoa(p.Balance), `"balance":"`+itoa(p.Balance)+".5"), ErrMalformedProof},
		{"balance above MaxInt64", edit(`"balance":"`+itoa(p.Balance), `"balance":"9223372036854775808`), ErrOverflow},
		{"balance empty", edit(`"balance":"`+itoa(p.Balance), `"balance":"`), ErrMalformedProof},
		{"sum negative", edit(sum, `"sum":"-1"`), ErrNegativeBalance},
		{"side up", edit(`"side":"`+p.Path[0].Side.String(), `"side":"up"`), ErrMalformedProof},
		{"coin empty", edit(`"coin":"BTC"`, `"coin":""`), ErrMalformedProof},
		{"path too long", edit(`"path":[`, `"path":[`+strings.Repeat(`{"side":"left","hash":"`+hash+`","sum":"0"},`, MaxDepth)), ErrMalformedProof},
		{"too large", string(valid) + strings.Repeat(" ", MaxProofSize), ErrMalformedProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProof([]byte(tt.data))
			if !errors.Is(err, ErrInvalidProof) || !errors.Is(err, tt.want) {
				t.Fatalf("ParseProof: %+v, %v; want ErrInvalidProof and %v", got, err, tt.want)
			}
		})
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
