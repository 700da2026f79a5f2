package test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

type wsMessage struct {
	Type      string          `json:"type"`
	Topic     string          `json:"topic"`
	Position  uint64          `json:"position"`
	Stream    string          `json:"stream"`
	EventType string          `json:"event_type"`
	Code      string          `json:"code"`
	Data      json.RawMessage `json:"data"`
}

func wsDial(t *testing.T, s *Server, header string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if header != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+header)
	}
	c, _, err := websocket.Dial(ctx, strings.Replace(s.URL, "http", "ws", 1)+"/api/v1/ws", opts)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// wsNext returns the next message that is not a heartbeat.
func wsNext(t *testing.T, c *websocket.Conn) wsMessage {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("websocket read: %v", err)
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("websocket message %s: %v", b, err)
		}
		if m.Type != "heartbeat" {
			return m
		}
	}
}

// TestWebsocket: the token goes in the header or as the first message
// (anything else closes the socket with 4401); a subscriber sees only the
// deposits of wallets it may read; every confirmation change is an event;
// after a disconnect, resuming from the last position misses nothing and
// repeats nothing.
func TestWebsocket(t *testing.T) {
	w := newAuthWorld(t) // users reader and stranger
	w.admin.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "d", "coin": "BTC", "confirmations": 2,
		"permissions": []string{"read", "address", "transfer"}})
	w.admin.expect(http.StatusOK, "PUT", "/users/reader/wallets/d", map[string]any{"permissions": []string{"read"}})
	w.admin.expect(http.StatusCreated, "POST", "/wallets/d/accounts", map[string]string{"name": "dep"})
	var addr struct{ Address string }
	w.admin.expect(http.StatusCreated, "POST", "/wallets/d/accounts/dep/addresses", nil).JSON(t, &addr)

	// Anything but a token first: closed with 4401.
	bad := wsDial(t, w.s, "")
	wsSend(t, bad, `{"type":"subscribe","topics":["deposits"]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, _, err := bad.Read(ctx)
	cancel()
	if websocket.CloseStatus(err) != 4401 {
		t.Fatalf("first message not a token: %v, want close 4401", err)
	}

	reader := wsDial(t, w.s, "")
	wsSend(t, reader, `{"type":"auth","token":"`+w.reader.token+`"}`)
	if m := wsNext(t, reader); m.Type != "authenticated" {
		t.Fatalf("auth by first message: %+v", m)
	}
	stranger := wsDial(t, w.s, w.stranger.token)
	if m := wsNext(t, stranger); m.Type != "authenticated" {
		t.Fatalf("auth by header: %+v", m)
	}
	for _, c := range []*websocket.Conn{reader, stranger} {
		wsSend(t, c, `{"subscribe":["deposits"]}`)
		if m := wsNext(t, c); m.Type != "subscribed" {
			t.Fatalf("subscribe: %+v", m)
		}
	}

	w.admin.expect(http.StatusCreated, "POST", "/wallets/d/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "0.1", "confirmations": 0})
	seen := wsNext(t, reader)
	if seen.Topic != "deposits" || seen.EventType != "ledger.deposit_seen" || seen.Stream != "wallet-d" {
		t.Fatalf("reader got %+v", seen)
	}
	// Amounts in the REST API's representation, not minor units.
	var data struct{ Amount any }
	if err := json.Unmarshal(seen.Data, &data); err != nil || data.Amount != "0.10000000" {
		t.Fatalf("deposit data %s: amount %v, want \"0.10000000\"", seen.Data, data.Amount)
	}
	// The reader drops; two confirmations happen meanwhile.
	reader.Close(websocket.StatusNormalClosure, "bye")
	w.admin.expect(http.StatusOK, "POST", "/wallets/d/simulate/blocks", map[string]int{"count": 1})
	w.admin.expect(http.StatusOK, "POST", "/wallets/d/simulate/blocks", map[string]int{"count": 1})

	again := wsDial(t, w.s, w.reader.token)
	wsNext(t, again)
	wsSend(t, again, `{"type":"subscribe","topics":["deposits"],"from":`+itoa(seen.Position)+`}`)
	if m := wsNext(t, again); m.Type != "subscribed" {
		t.Fatalf("resubscribe: %+v", m)
	}
	var positions []uint64
	for len(positions) < 2 {
		m := wsNext(t, again)
		if m.Type != "event" || m.Position <= seen.Position {
			t.Fatalf("after resuming: %+v", m)
		}
		positions = append(positions, m.Position)
	}
	if positions[0] >= positions[1] {
		t.Fatalf("positions %v out of order", positions)
	}

	// The stranger, who may not read wallet d, got nothing but heartbeats.
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for {
		_, b, err := stranger.Read(ctx)
		if err != nil {
			break
		}
		var m wsMessage
		_ = json.Unmarshal(b, &m)
		if m.Type != "heartbeat" {
			t.Fatalf("stranger received %s", b)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
