package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/webhook"
)

var (
	secret = []byte("whsec_test")
	t0     = time.Unix(1700000000, 0)
	body   = []byte(`{"amount":"1.5"}`)
)

// signedHeader returns the headers a sender puts on body at ts.
func signedHeader(secret []byte, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, body))
	return h
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// python3: hmac.new(b'whsec_test', b'1700000000.{"amount":"1.5"}', hashlib.sha256).hexdigest()
	const want = "v1=2897e26bcddc908c74ba060a4efaee7e5ddc6ff007206bbb08b0aae7a9df80a6"
	if got := webhook.Sign(secret, t0, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := []byte("old-secret"), []byte("new-secret")
	rotated := http.Header{}
	rotated.Set(webhook.HeaderTimestamp, strconv.FormatInt(t0.Unix(), 10))
	rotated.Set(webhook.HeaderSignature, webhook.Sign(newSecret, t0, body)+", "+webhook.Sign(oldSecret, t0, body))

	with := func(name, value string) http.Header {
		h := signedHeader(secret, t0, body)
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	validSig := webhook.Sign(secret, t0, body)

	tests := []struct {
		name   string
		secret []byte
		header http.Header
		body   []byte
		now    time.Time
		tol    time.Duration
		want   error // nil: accepted
	}{
		{"valid", secret, signedHeader(secret, t0, body), body, t0, time.Minute, nil},
		{"valid at the edge of tolerance", secret, signedHeader(secret, t0, body), body, t0.Add(time.Minute), time.Minute, nil},
		{"default tolerance", secret, signedHeader(secret, t0, body), body, t0.Add(4 * time.Minute), 0, nil},
		{"tampered body", secret, signedHeader(secret, t0, body), []byte(`{"amount":"15"}`), t0, time.Minute, webhook.ErrSignatureMismatch},
		{"wrong secret", []byte("other"), signedHeader(secret, t0, body), body, t0, time.Minute, webhook.ErrSignatureMismatch},
		{"timestamp changed", secret, with(webhook.HeaderTimestamp, strconv.FormatInt(t0.Unix()+1, 10)), body, t0, time.Minute, webhook.ErrSignatureMismatch},
		{"old timestamp", secret, signedHeader(secret, t0, body), body, t0.Add(time.Minute + time.Second), time.Minute, webhook.ErrTimestampTolerance},
		{"old timestamp, default tolerance", secret, signedHeader(secret, t0, body), body, t0.Add(6 * time.Minute), 0, webhook.ErrTimestampTolerance},
		{"future timestamp", secret, signedHeader(secret, t0, body), body, t0.Add(-2 * time.Minute), time.Minute, webhook.ErrTimestampTolerance},
		{"far future timestamp", secret, with(webhook.HeaderTimestamp, "9223372036854775807"), body, t0, time.Minute, webhook.ErrTimestampTolerance},
		{"far past timestamp", secret, with(webhook.HeaderTimestamp, "-9223372036854775808"), body, t0, time.Minute, webhook.ErrTimestampTolerance},
		{"rotation, new secret", newSecret, rotated, body, t0, time.Minute, nil},
		{"rotation, old secret", oldSecret, rotated, body, t0, time.Minute, nil},
		{"rotation, neither secret", secret, rotated, body, t0, time.Minute, webhook.ErrSignatureMismatch},
		{"unknown scheme ignored", secret, with(webhook.HeaderSignature, "v0=abc,"+validSig), body, t0, time.Minute, nil},
		{"no timestamp", secret, with(webhook.HeaderTimestamp, ""), body, t0, time.Minute, webhook.ErrMissingHeader},
		{"no signature", secret, with(webhook.HeaderSignature, ""), body, t0, time.Minute, webhook.ErrMissingHeader},
		{"timestamp not a number", secret, with(webhook.HeaderTimestamp, "yesterday"), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"timestamp with space", secret, with(webhook.HeaderTimestamp, " 1700000000"), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"signature without scheme", secret, with(webhook.HeaderSignature, validSig[3:]), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"signature not hex", secret, with(webhook.HeaderSignature, "v1=zz"+validSig[5:]), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"signature too short", secret, with(webhook.HeaderSignature, validSig[:len(validSig)-2]), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"only other schemes", secret, with(webhook.HeaderSignature, "v0="+validSig[3:]), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"empty entry", secret, with(webhook.HeaderSignature, validSig+",,"), body, t0, time.Minute, webhook.ErrMalformedHeader},
		{"too many signatures", secret, with(webhook.HeaderSignature, validSig+",v0=a,v0=b,v0=c,v0=d,v0=e,v0=f,v0=g,v0=h"), body, t0, time.Minute, webhook.ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Verify(tt.secret, tt.header, tt.body, tt.now, tt.tol)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzVerify checks that Verify never panics on any header and accepts
// exactly what Sign produced for the same secret, time and body.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("whsec_test"), int64(1700000000), []byte(`{"a":1}`), "1700000000", "v1=00")
	f.Add([]byte(""), int64(0), []byte(""), "", "")
	f.Add([]byte("k"), int64(-1), []byte("x"), "-1", "v1=,v1=")
	f.Add([]byte("k"), int64(1<<62), []byte("x"), "+5", "v0=a, v1=zz ,=")
	f.Fuzz(func(t *testing.T, secret []byte, unix int64, body []byte, tsHeader, sigHeader string) {
		ts := time.Unix(unix, 0)

		// Arbitrary headers: must not panic, and must not accept a
		// signature that is not the right one.
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, tsHeader)
		h.Set(webhook.HeaderSignature, sigHeader)
		if err := webhook.Verify(secret, h, body, ts, time.Minute); err == nil {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(tsHeader + "."))
			m.Write(body)
			if right := hex.EncodeToString(m.Sum(nil)); !strings.Contains(strings.ToLower(sigHeader), right) {
				t.Fatalf("Verify accepted %q / %q, which lacks %s", tsHeader, sigHeader, right)
			}
		}

		// What Sign produced is accepted at the time it was made …
		good := signedHeader(secret, ts, body)
		if err := webhook.Verify(secret, good, body, ts, time.Minute); err != nil {
			t.Fatalf("Verify(Sign(...)): %v", err)
		}
		// … and not for another body.
		other := append([]byte("x"), body...)
		if err := webhook.Verify(secret, good, other, ts, time.Minute); !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Fatalf("Verify with another body: %v, want ErrSignatureMismatch", err)
		}
	})
}
