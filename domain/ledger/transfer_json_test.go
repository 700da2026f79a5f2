package ledger

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestFundsTransferredDecodesAsEncodingJSON: the hand-written decoder of
// FundsTransferred gives what encoding/json gives (value or failure) for
// what json.Marshal writes and for every shape it leaves to encoding/json.
func TestFundsTransferredDecodesAsEncodingJSON(t *testing.T) {
	type plain FundsTransferred
	r := rand.New(rand.NewPCG(3, 4))
	odd := []string{"", "a", "ü", "\"q\"", "back\\slash", "tab\t", "\u2028", "<&>", "\xff", "emoji 🙂"}
	var inputs []string
	for i := range 300 {
		e := FundsTransferred{ID: fmt.Sprintf("t-%d", i), From: "acct-1", To: "acct-2", Amount: r.Int64N(1 << 62),
			Memo: odd[r.IntN(len(odd))], Idempotency: Idempotency{Key: odd[r.IntN(len(odd))], RequestHash: "sha256:x"}}
		if i%3 == 0 {
			e.Amount = -e.Amount
		}
		e.Postings = []Posting{{Account: e.From, Bucket: Available, Amount: -e.Amount}, {Account: odd[r.IntN(len(odd))], Bucket: Available, Amount: e.Amount}}
		if i%7 == 0 {
			e.Postings = []Posting{}
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	base := `{"id":"t-1","from":"a","to":"b","amount":5,"memo":"m","postings":[{"account":"a","bucket":"available","amount":-5},{"account":"b","bucket":"available","amount":5}],"idempotency_key":"k"}`
	inputs = append(inputs, base, `{}`, `{"postings":[]}`, `{"postings":[{}]}`,
		strings.Replace(base, `"id"`, `"ID"`, 1),                     // another spelling
		strings.Replace(base, `"memo":"m"`, `"memo":"m","x":[1]`, 1), // unknown key
		strings.Replace(base, `"to":"b"`, `"to":"b","to":"c"`, 1),    // repeated key
		strings.Replace(base, `,"amount":5`, `, "amount" : 5`, 1),    // whitespace
		strings.Replace(base, `"amount":5`, `"amount":5.0`, 1),
		strings.Replace(base, `"amount":5`, `"amount":1e3`, 1),
		strings.Replace(base, `"amount":5`, `"amount":99999999999999999999`, 1),
		strings.Replace(base, `"amount":5`, `"amount":-0`, 1),
		strings.Replace(base, `"amount":5`, `"amount":"5"`, 1),
		strings.Replace(base, `"memo":"m"`, `"memo":null`, 1),
		strings.Replace(base, `"postings":[`, `"postings":null,"p":[`, 1),
		strings.Replace(base, `"bucket":"available"`, `"bucket":"held","bucket":"pending"`, 1),
		`[]`, `null`, `{"id":"x"`, `{"id":"x",}`)
	inputs = append(inputs, `{"id":"x"} {}`, `{"id":"x"}x`, `{"id":"x","amount":5-}`, ``) // not JSON: called directly, it must refuse them
	for _, in := range inputs {
		var fast FundsTransferred
		ferr := fast.UnmarshalJSON([]byte(in)) // as eventstore.Codec calls it: no validation before
		var want plain
		werr := json.Unmarshal([]byte(in), &want)
		if (ferr == nil) != (werr == nil) {
			t.Errorf("%s: error %v, encoding/json: %v", in, ferr, werr)
			continue
		}
		if ferr == nil && !reflect.DeepEqual(fast, FundsTransferred(want)) {
			t.Errorf("%s:\n got %+v\nwant %+v", in, fast, want)
		}
	}
	// The compact shape takes the fast path.
	marshalled, err := json.Marshal(FundsTransferred{ID: "t-1", From: "a", To: "b", Amount: 5, Memo: "invoice ü",
		Postings: []Posting{{Account: "a", Bucket: Available, Amount: -5}}, Idempotency: Idempotency{Key: "k", RequestHash: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	if !fastPath(marshalled, FundsTransferred{}) || !fastPath([]byte(base), FundsTransferred{}) {
		t.Errorf("json.Marshal's output did not take the fast path")
	}
}

// FuzzFundsTransferredDecodesAsEncodingJSON: on any input the hand decoder
// fails exactly when encoding/json does and otherwise decodes the same.
func FuzzFundsTransferredDecodesAsEncodingJSON(f *testing.F) {
	type plain FundsTransferred
	for _, s := range []string{`{"id":"t-1","from":"a","to":"b","amount":5,"memo":"m","postings":[{"account":"a","bucket":"available","amount":-5},{"account":"b","bucket":"available","amount":5}],"idempotency_key":"k","request_hash":"h"}`,
		`{}`, `{"postings":[{}]}`, `{"amount":-0}`, `{"id":"\u00fc"}`, `null`, `{"id":"x"}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast FundsTransferred
		ferr := fast.UnmarshalJSON(b)
		var want plain
		werr := json.Unmarshal(b, &want)
		if (ferr == nil) != (werr == nil) {
			t.Fatalf("%q: error %v, encoding/json: %v", b, ferr, werr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, FundsTransferred(want)) {
			t.Fatalf("%q:\n got %+v\nwant %+v", b, fast, want)
		}
	})
}
