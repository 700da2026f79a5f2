package blockionotify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/adapters/chain/blockio/blockiotest"
	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/blockionotify"
)

const testToken = "5pmPQkt1ntyfDTTPqWju7hXej9-XzZxlvZTaDIOWuP0" // 32 bytes, base64url

func newWebhook(t *testing.T, cfg blockionotify.WebhookConfig) (*blockionotify.Webhook, *recorder, *syncBuffer) {
	t.Helper()
	if cfg.Coin == "" {
		cfg.Coin = "BTC"
	}
	if cfg.Network == "" {
		cfg.Network = "BTCTEST"
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	rec, logs := &recorder{}, &syncBuffer{}
	h, err := blockionotify.NewWebhook(cfg, rec.sink, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h, rec, logs
}

// event is a block.io web hook delivery for txid.
func event(txid string, attempt, confirmations int) string {
	return fmt.Sprintf(`{"notification_id":"8a531bc3ecf111ac9c5496f5","delivery_attempt":%d,"type":"address",`+
		`"data":{"network":"BTCTEST","address":"2N1xyz","balance_change":"0.01000000","amount_sent":"0.00000000",`+
		`"amount_received":"0.01000000","txid":"%s","confirmations":%d,"is_green":false},"created_at":1426104819}`,
		attempt, txid, confirmations)
}

func post(h http.Handler, method, path, body string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var hookPath = blockionotify.WebhookPathPrefix + testToken

func TestWebhookTakesANotification(t *testing.T) {
	t.Parallel()
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{})
	txid := strings.Repeat("0f", 32)
	if w := post(h, http.MethodPost, hookPath, event(strings.ToUpper(txid), 1, 0), nil); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if got := rec.notifications(); len(got) != 1 || got[0] != (walletnotify.Notification{Coin: "BTC", TxID: txid, Source: blockionotify.SourceWebhook}) {
		t.Fatalf("sink got %+v", got)
	}
	// Mounted on a pattern with {token}.
	mux := http.NewServeMux()
	mux.Handle("POST "+blockionotify.WebhookPathPrefix+"{token}", h)
	if w := post(mux, http.MethodPost, hookPath, event(txid, 1, 1), nil); w.Code != http.StatusOK || rec.count(txid) != 2 {
		t.Fatalf("through a mux: status %d, %d notifications", w.Code, rec.count(txid))
	}
}

func TestWebhookWrongToken(t *testing.T) {
	t.Parallel()
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{})
	body := event(strings.Repeat("0f", 32), 1, 0)
	for _, path := range []string{
		blockionotify.WebhookPathPrefix + testToken[:len(testToken)-1],
		blockionotify.WebhookPathPrefix + testToken + "x",
		blockionotify.WebhookPathPrefix + strings.ToLower(testToken),
		blockionotify.WebhookPathPrefix,
		hookPath + "/",
		"/",
	} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			if w := post(h, method, path, body, nil); w.Code != http.StatusNotFound {
				t.Errorf("%s %s: status %d, want 404", method, path, w.Code)
			}
		}
	}
	if w := post(h, http.MethodGet, hookPath, "", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("GET with the token: status %d", w.Code)
	}
	if n := len(rec.notifications()); n != 0 {
		t.Fatalf("%d notifications through a wrong token", n)
	}
}

func TestWebhookHMAC(t *testing.T) {
	t.Parallel()
	key := "relay-signing-key-0123456789"
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{HMACKey: blockionotify.Secret(key)})
	body := event(strings.Repeat("1e", 32), 1, 0)
	good := blockionotify.Sign([]byte(key), []byte(body))
	for name, sig := range map[string]string{
		"missing":        "",
		"other key":      blockionotify.Sign([]byte("another-key-0123456789"), []byte(body)),
		"other body":     blockionotify.Sign([]byte(key), []byte(body+" ")),
		"without prefix": strings.TrimPrefix(good, "sha256="),
		"upper case":     strings.ToUpper(good),
	} {
		if w := post(h, http.MethodPost, hookPath, body, http.Header{blockionotify.SignatureHeader: {sig}}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s signature: status %d, want 401", name, w.Code)
		}
	}
	if n := len(rec.notifications()); n != 0 {
		t.Fatalf("%d notifications with a bad signature", n)
	}
	if w := post(h, http.MethodPost, hookPath, body, http.Header{blockionotify.SignatureHeader: {good}}); w.Code != http.StatusOK || len(rec.notifications()) != 1 {
		t.Fatalf("good signature: status %d", w.Code)
	}
}

func TestWebhookMalformed(t *testing.T) {
	t.Parallel()
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{MaxBody: 2048})
	for name, body := range map[string]string{
		"not json":       `notification_id=1&txid=abc`,
		"truncated":      event(strings.Repeat("0f", 32), 1, 0)[:60],
		"no data":        `{"type":"address"}`,
		"data not obj":   `{"type":"account","data":[1,2]}`,
		"no txid":        `{"type":"address","data":{"network":"BTCTEST"}}`,
		"short txid":     `{"type":"address","data":{"txid":"` + strings.Repeat("a", 63) + `"}}`,
		"not hex":        `{"type":"new-transactions","data":{"txid":"` + strings.Repeat("g", 64) + `"}}`,
		"txid not a str": `{"type":"address","data":{"txid":12}}`,
	} {
		if w := post(h, http.MethodPost, hookPath, body, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, w.Code)
		}
	}
	if w := post(h, http.MethodPost, hookPath, `{"type":"ping","pad":"`+strings.Repeat("x", 4096)+`"}`, nil); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: status %d", w.Code)
	}
	if n := len(rec.notifications()); n != 0 {
		t.Fatalf("%d notifications from malformed bodies", n)
	}
}

func TestWebhookIgnoresPingsBlocksAndOtherNetworks(t *testing.T) {
	t.Parallel()
	h, rec, logs := newWebhook(t, blockionotify.WebhookConfig{})
	for _, body := range []string{
		`{"type":"ping"}`,
		`{"notification_id":"x","type":"new-blocks","data":{"network":"BTCTEST","block_no":100}}`,
		strings.Replace(event(strings.Repeat("2d", 32), 1, 0), "BTCTEST", "DOGE", 1),
	} {
		if w := post(h, http.MethodPost, hookPath, body, nil); w.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", body, w.Code)
		}
	}
	if n := len(rec.notifications()); n != 0 {
		t.Fatalf("%d notifications", n)
	}
	if !strings.Contains(logs.String(), "another network") {
		t.Fatal("the other network's notification was not logged")
	}
}

func TestWebhookDedupes(t *testing.T) {
	t.Parallel()
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{})
	txid := strings.Repeat("3c", 32)
	for attempt := 1; attempt <= 3; attempt++ { // block.io's retries of one event
		if w := post(h, http.MethodPost, hookPath, event(txid, attempt, 0), nil); w.Code != http.StatusOK {
			t.Fatalf("attempt %d: status %d", attempt, w.Code)
		}
	}
	if n := rec.count(txid); n != 1 {
		t.Fatalf("%d notifications for one event", n)
	}
	// The next confirmation is another event of the same notification_id.
	if w := post(h, http.MethodPost, hookPath, event(txid, 1, 1), nil); w.Code != http.StatusOK || rec.count(txid) != 2 {
		t.Fatalf("next confirmation: status %d, %d notifications", w.Code, rec.count(txid))
	}
}

func TestWebhookSinkFailureIsRetried(t *testing.T) {
	t.Parallel()
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{})
	txid := strings.Repeat("4b", 32)
	rec.setFailing(true)
	if w := post(h, http.MethodPost, hookPath, event(txid, 1, 0), nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("sink refusing: status %d, want 503", w.Code)
	}
	rec.setFailing(false)
	if w := post(h, http.MethodPost, hookPath, event(txid, 2, 0), nil); w.Code != http.StatusOK || rec.count(txid) != 1 {
		t.Fatalf("retry: status %d, %d notifications", w.Code, rec.count(txid))
	}
}

func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	tok, err := blockionotify.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg := blockionotify.WebhookConfig{Coin: "LTC", Token: blockionotify.Secret(tok)}
	if err := cfg.Validate(); err != nil || cfg.Network != "LTC" || cfg.DedupeWindow != blockionotify.DefaultDedupeWindow {
		t.Fatalf("defaults %+v, %v", cfg, err)
	}
	hexToken := blockionotify.WebhookConfig{Coin: "LTC", Token: blockionotify.Secret(strings.Repeat("a1", 32))}
	if err := hexToken.Validate(); err != nil {
		t.Fatalf("hex token: %v", err)
	}
	for name, c := range map[string]blockionotify.WebhookConfig{
		"short token":    {Coin: "BTC", Token: "abcdef0123456789"},
		"no token":       {Coin: "BTC"},
		"path in token":  {Coin: "BTC", Token: blockionotify.Secret(tok[:20] + "/" + tok[21:])},
		"std base64":     {Coin: "BTC", Token: "ab+defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"},
		"short hmac key": {Coin: "BTC", Token: blockionotify.Secret(tok), HMACKey: "short"},
		"no coin":        {Token: blockionotify.Secret(tok)},
	} {
		if err := c.Validate(); !errors.Is(err, blockionotify.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if s := fmt.Sprintf("%+v", cfg); strings.Contains(s, tok) {
		t.Fatalf("config shows its token: %s", s)
	}
}

// TestWebhookFromSimulatedBlockio registers the hook with the simulated
// block.io (create_notification) and receives its deliveries.
func TestWebhookFromSimulatedBlockio(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	h, rec, _ := newWebhook(t, blockionotify.WebhookConfig{Network: s.Network()})
	mux := http.NewServeMux()
	mux.Handle(blockionotify.WebhookPathPrefix+"{token}", h)
	hook := httptest.NewServer(mux)
	t.Cleanup(hook.Close)

	body, _ := json.Marshal(map[string]string{"api_key": s.APIKey(), "type": "account", "url": hook.URL + hookPath})
	resp, err := http.Post(s.URL()+"create_notification", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Status string `json:"status"`
		Data   struct {
			NotificationID string `json:"notification_id"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || answer.Status != "success" || answer.Data.NotificationID == "" {
		t.Fatalf("create_notification: %+v, %v", answer, err)
	}

	txid := s.Pay(s.NewAddress(), 25_000)
	eventually(t, "the web hook's notification", func() bool { return rec.count(txid) == 1 })
	s.Mine(1)
	eventually(t, "the confirmation's notification", func() bool { return rec.count(txid) == 2 })
	for _, d := range s.Deliveries() {
		if d.Status != http.StatusOK || d.NotificationID != answer.Data.NotificationID {
			t.Fatalf("delivery %+v", d)
		}
	}

	// A hook at a wrong URL is refused at creation (block.io pings it).
	body, _ = json.Marshal(map[string]string{"api_key": s.APIKey(), "type": "account", "url": hook.URL + blockionotify.WebhookPathPrefix + "guess"})
	resp, err = http.Post(s.URL()+"create_notification", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || answer.Status != "fail" {
		t.Fatalf("hook at a guessed URL: %+v, %v", answer, err)
	}
}
