package ledger

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// decoderPair decodes one event type two ways: with its UnmarshalJSON as
// eventstore.Codec calls it (no validation before), and with encoding/json
// alone (a type without the method).
type decoderPair struct {
	name       string
	fast, slow func([]byte) (any, error)
}

func fastOf[T any, P interface {
	*T
	json.Unmarshaler
}]() func([]byte) (any, error) {
	return func(b []byte) (any, error) {
		var e T
		err := P(&e).UnmarshalJSON(b)
		return e, err
	}
}

// decoderPairs are the event types with a hand-written decoder.
var decoderPairs = []decoderPair{
	{"FundsTransferred", fastOf[FundsTransferred](), func(b []byte) (any, error) {
		type plain FundsTransferred
		var e plain
		err := json.Unmarshal(b, &e)
		return FundsTransferred(e), err
	}},
	{"AccountOpened", fastOf[AccountOpened](), func(b []byte) (any, error) {
		type plain AccountOpened
		var e plain
		err := json.Unmarshal(b, &e)
		return AccountOpened(e), err
	}},
	{"BalanceImported", fastOf[BalanceImported](), func(b []byte) (any, error) {
		type plain BalanceImported
		var e plain
		err := json.Unmarshal(b, &e)
		return BalanceImported(e), err
	}},
	{"HoldPlaced", fastOf[HoldPlaced](), func(b []byte) (any, error) {
		type plain HoldPlaced
		var e plain
		err := json.Unmarshal(b, &e)
		return HoldPlaced(e), err
	}},
	{"HoldReleased", fastOf[HoldReleased](), func(b []byte) (any, error) {
		type plain HoldReleased
		var e plain
		err := json.Unmarshal(b, &e)
		return HoldReleased(e), err
	}},
	{"HoldExpired", fastOf[HoldExpired](), func(b []byte) (any, error) {
		type plain HoldExpired
		var e plain
		err := json.Unmarshal(b, &e)
		return HoldExpired(e), err
	}},
}

// sameAsEncodingJSON fails t unless every hand decoder fails on b exactly
// when encoding/json does and otherwise decodes the same.
func sameAsEncodingJSON(t testing.TB, b []byte) {
	t.Helper()
	for _, d := range decoderPairs {
		fast, ferr := d.fast(b)
		want, werr := d.slow(b)
		if (ferr == nil) != (werr == nil) {
			t.Fatalf("%s %q: error %v, encoding/json: %v", d.name, b, ferr, werr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, want) {
			t.Fatalf("%s %q:\n got %+v\nwant %+v", d.name, b, fast, want)
		}
	}
}

// sampleEvents returns events of every type with a hand decoder, with odd
// strings, amounts and expiries.
func sampleEvents(n int) []Event {
	r := rand.New(rand.NewPCG(5, 6))
	odd := []string{"", "a", "ü", "\"q\"", "back\\slash", "tab\t", "\u2028", "<&>", "\xff", "emoji 🙂", "@import"}
	pick := func() string { return odd[r.IntN(len(odd))] }
	var out []Event
	for i := range n {
		amount := r.Int64N(1 << 62)
		if i%3 == 0 {
			amount = -amount
		}
		acct := fmt.Sprintf("acct-%d", i)
		ps := []Posting{{Account: acct, Bucket: Available, Amount: -amount}, {Account: pick(), Bucket: Bucket(odd[r.IntN(2)] + "held"), Amount: amount}}
		if i%7 == 0 {
			ps = []Posting{}
		}
		idem := Idempotency{Key: pick(), RequestHash: pick()}
		var expires time.Time
		if i%2 == 0 {
			expires = time.Date(2026, 1, 1, 0, 0, i, i*1000, time.UTC)
		}
		out = append(out,
			FundsTransferred{ID: pick(), From: acct, To: pick(), Amount: amount, Memo: pick(), Postings: ps, Idempotency: idem},
			AccountOpened{Account: pick(), Idempotency: idem},
			BalanceImported{ID: pick(), Account: acct, Amount: amount, Reason: pick(), Postings: ps, Idempotency: idem},
			HoldPlaced{ID: pick(), Account: acct, Amount: amount, Reason: pick(), ExpiresAt: expires, Postings: ps, Idempotency: idem},
			HoldReleased{ID: pick(), Account: acct, Amount: amount, Reason: pick(), Postings: ps, Idempotency: idem},
			HoldExpired{ID: pick(), Account: acct, Amount: amount, ExpiresAt: expires, Postings: ps, Idempotency: idem})
	}
	return out
}

// TestLedgerEventsDecodeAsEncodingJSON: the hand-written decoders of
// hold, account and import events give what encoding/json gives (value or
// failure) for what json.Marshal writes, for every shape they leave to
// encoding/json, and for input that is not JSON; json.Marshal's output
// takes the fast path.
func TestLedgerEventsDecodeAsEncodingJSON(t *testing.T) {
	var inputs []string
	for _, e := range sampleEvents(100) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	base := `{"id":"h-1","account":"a","amount":5,"reason":"r","expires_at":"2026-01-01T00:00:00.815Z","postings":[{"account":"a","bucket":"available","amount":-5},{"account":"a","bucket":"held","amount":5}],"idempotency_key":"k","request_hash":"h"}`
	inputs = append(inputs, base, `{}`, `{"postings":[]}`, `{"postings":[{}]}`, `{"account":"acct-0"}`,
		strings.Replace(base, `"id"`, `"ID"`, 1),                                 // another spelling
		strings.Replace(base, `"reason":"r"`, `"reason":"r","x":[1]`, 1),         // unknown key
		strings.Replace(base, `"account":"a"`, `"account":"a","account":"b"`, 1), // repeated key
		strings.Replace(base, `,"amount":5`, `, "amount" : 5`, 1),                // whitespace
		strings.Replace(base, `"amount":5`, `"amount":5.0`, 1),
		strings.Replace(base, `"amount":5`, `"amount":1e3`, 1),
		strings.Replace(base, `"amount":5`, `"amount":9223372036854775807`, 1),
		strings.Replace(base, `"amount":5`, `"amount":9223372036854775808`, 1),
		strings.Replace(base, `"amount":5`, `"amount":-9223372036854775808`, 1),
		strings.Replace(base, `"amount":5`, `"amount":-9223372036854775809`, 1),
		strings.Replace(base, `"amount":5`, `"amount":99999999999999999999`, 1),
		strings.Replace(base, `"amount":5`, `"amount":-0`, 1),
		strings.Replace(base, `"amount":5`, `"amount":05`, 1),
		strings.Replace(base, `"amount":5`, `"amount":"5"`, 1),
		strings.Replace(base, `"reason":"r"`, `"reason":null`, 1),
		strings.Replace(base, `"expires_at":"2026-01-01T00:00:00.815Z"`, `"expires_at":null`, 1),
		strings.Replace(base, `"expires_at":"2026-01-01T00:00:00.815Z"`, `"expires_at":"2026-01-01T00:00:00+01:00"`, 1),
		strings.Replace(base, `"expires_at":"2026-01-01T00:00:00.815Z"`, `"expires_at":"2026-13-01T00:00:00Z"`, 1),
		strings.Replace(base, `"expires_at":"2026-01-01T00:00:00.815Z"`, `"expires_at":"yesterday"`, 1),
		strings.Replace(base, `"expires_at":"2026-01-01T00:00:00.815Z"`, `"expires_at":5`, 1),
		strings.Replace(base, `"postings":[`, `"postings":null,"p":[`, 1),
		strings.Replace(base, `"bucket":"available"`, `"bucket":"held","bucket":"pending"`, 1),
		strings.Replace(base, `"bucket":"available"`, `"bucket":"pending"`, 1),
		strings.Replace(base, `"bucket":"available"`, `"bucket":"Available"`, 1),
		`[]`, `null`, `{"id":"x"`, `{"id":"x",}`, `{"id":"x"} {}`, `{"id":"x"}x`, `{"id":"x","amount":5-}`, ``, `{"amount":-}`)
	for _, in := range inputs {
		sameAsEncodingJSON(t, []byte(in))
	}
	for _, e := range plainEvents() {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !fastPath(b, e) {
			t.Errorf("%T %s: json.Marshal's output did not take the fast path", e, b)
		}
	}
}

// fastPath reports whether b decodes as e's type by the hand parser.
func fastPath(b []byte, e Event) bool {
	switch e.(type) {
	case FundsTransferred:
		return parseTransfer(b, new(FundsTransferred))
	case AccountOpened:
		return parseAccountOpened(b, new(AccountOpened))
	case BalanceImported:
		return parseBalanceImported(b, new(BalanceImported))
	case HoldPlaced:
		return parseHoldPlaced(b, new(HoldPlaced))
	case HoldReleased:
		return parseHoldReleased(b, new(HoldReleased))
	case HoldExpired:
		return parseHoldExpired(b, new(HoldExpired))
	}
	return false
}

// FuzzLedgerEventsDecodeAsEncodingJSON: on any input every hand decoder
// fails exactly when encoding/json does and otherwise decodes the same.
func FuzzLedgerEventsDecodeAsEncodingJSON(f *testing.F) {
	for _, e := range sampleEvents(2) {
		b, err := json.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"postings":[{}]}`, `{"amount":-0}`, `{"expires_at":"2026-01-01T00:00:00+01:00"}`, `null`, `{"id":"x"}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsEncodingJSON(t, b) })
}

// plainEvents returns an event of every type with a hand decoder, of the
// shape the service writes (strings without escapes).
func plainEvents() []Event {
	ps := []Posting{{Account: "acct-56", Bucket: Available, Amount: -90825}, {Account: "acct-532", Bucket: Available, Amount: 90825}}
	idem := Idempotency{Key: "req-1499", RequestHash: "sha256:req-1499"}
	return []Event{
		FundsTransferred{ID: "t-1499", From: "acct-56", To: "acct-532", Amount: 90825, Memo: "invoice 1499", Postings: ps, Idempotency: idem},
		AccountOpened{Account: "acct-0"},
		BalanceImported{ID: "imp-0", Account: "acct-532", Amount: 90825, Reason: "opening balance", Postings: ps},
		HoldPlaced{ID: "h-1", Account: "acct-56", Amount: 90825, Reason: "withdrawal review", ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 815e6, time.UTC), Postings: ps, Idempotency: idem},
		HoldReleased{ID: "h-1", Account: "acct-56", Amount: 90825, Reason: "withdrawal review", Postings: ps},
		HoldExpired{ID: "h-1", Account: "acct-56", Amount: 90825, ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 815e6, time.UTC), Postings: ps},
	}
}

// BenchmarkDecodeEvents decodes what json.Marshal writes for each event
// type with a hand decoder, as eventstore.Codec does.
func BenchmarkDecodeEvents(b *testing.B) {
	for _, e := range plainEvents() {
		data, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		ptr := reflect.New(reflect.TypeOf(e)).Interface()
		b.Run(fmt.Sprintf("%T", e)[len("ledger."):], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if u, ok := ptr.(json.Unmarshaler); ok {
					err = u.UnmarshalJSON(data)
				} else {
					err = json.Unmarshal(data, ptr)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
