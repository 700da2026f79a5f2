package blockiotest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// The websocket side speaks block.io's notification protocol as its
// documentation and its clients show it: the client sends subscriptions
// ({"type":"account","api_key":...}, {"type":"address","network":...,
// "address":...}, {"type":"new-blocks","network":...}), the server answers
// each with {"status":"success"} (or "fail") and pushes
// {"type":"address"|"account","data":{"network","address","txid",
// "confirmations","balance_change","amount_sent","amount_received",
// "is_green"}}, plus {"type":"ping"} now and then.

const wsWriteTimeout = 5 * time.Second

func (c *wsConn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsWriteTimeout)
	defer cancel()
	return c.c.Write(ctx, websocket.MessageText, b)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(64 << 10)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.CloseNow()
		return
	}
	s.wsAccepted++
	conn := &wsConn{c: c, n: s.wsAccepted}
	s.conns[conn] = true
	s.wsWG.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		c.CloseNow()
		s.wsWG.Done()
	}()
	_ = conn.write([]byte(`{"status":"success","data":{"message":"Welcome to Block.io notifications"}}`))
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return
		}
		var m struct {
			Type    string `json:"type"`
			Network string `json:"network"`
			Address string `json:"address"`
			APIKey  string `json:"api_key"`
		}
		if json.Unmarshal(b, &m) != nil {
			_ = conn.write([]byte(`{"status":"fail","data":{"error_message":"Invalid JSON"}}`))
			continue
		}
		sub := Subscription{Conn: conn.n, Type: m.Type, Network: strings.ToUpper(m.Network), Address: m.Address}
		answer := `{"status":"success","data":{"type":"` + m.Type + `"}}`
		switch m.Type {
		case "account":
			sub.KeyValid = m.APIKey == s.opts.APIKey
			sub.Network = s.opts.Network
			if !sub.KeyValid {
				answer = `{"status":"fail","data":{"error_message":"Invalid API Key."}}`
			}
		case "address", "new-blocks", "new-transactions":
			if sub.Network == "" || (m.Type == "address" && m.Address == "") {
				answer = `{"status":"fail","data":{"error_message":"Missing network or address."}}`
			}
		case "pong":
			continue
		default:
			answer = `{"status":"fail","data":{"error_message":"Unknown subscription type."}}`
		}
		s.mu.Lock()
		s.subs = append(s.subs, sub)
		if !strings.Contains(answer, `"fail"`) {
			conn.subs = append(conn.subs, sub)
		}
		s.mu.Unlock()
		_ = conn.write([]byte(answer))
	}
}

// Subscriptions returns every subscription message received so far, in
// order (refused ones included).
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subs)
}

// WebsocketConnections is how many websocket connections were accepted.
func (s *Server) WebsocketConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wsAccepted
}

func (s *Server) openConns() []*wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*wsConn
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// DropWebsockets cuts every websocket connection without a close frame,
// as a failing server or network would.
func (s *Server) DropWebsockets() {
	for _, c := range s.openConns() {
		c.c.CloseNow()
	}
}

// PingWebsockets sends block.io's {"type":"ping"} on every connection.
func (s *Server) PingWebsockets() {
	s.SendWebsockets([]byte(`{"type":"ping","data":{"timestamp":1700000000}}`))
}

// SendWebsockets sends msg as is on every connection.
func (s *Server) SendWebsockets(msg []byte) {
	for _, c := range s.openConns() {
		_ = c.write(msg)
	}
}

// createNotification registers a web hook (create_notification with type
// account or address, url, and address for type address) after the URL
// answered block.io's {"type":"ping"} with a 2xx status.
func (s *Server) createNotification(w http.ResponseWriter, params map[string]any) {
	kind, _ := params["type"].(string)
	url, _ := params["url"].(string)
	addr, _ := params["address"].(string)
	if kind != "account" && kind != "address" {
		fail(w, http.StatusOK, "Invalid value for parameter type")
		return
	}
	if kind == "address" && addr == "" {
		fail(w, http.StatusOK, "Missing parameter address")
		return
	}
	if status := s.post(url, []byte(`{"type":"ping"}`)); status < 200 || status > 299 {
		fail(w, http.StatusOK, "Your URL did not respond with a 2xx status to our ping.")
		return
	}
	s.mu.Lock()
	s.seq++
	h := hook{id: s.hash("notification", s.seq)[:24], kind: kind, url: url, address: addr}
	s.hooks = append(s.hooks, h)
	s.mu.Unlock()
	d := map[string]any{"network": s.opts.Network, "notification_id": h.id, "type": kind, "enabled": true, "url": url}
	if addr != "" {
		d["address"] = addr
	}
	success(w, d)
}

// hookAttempts is how often a web hook event is tried.
const hookAttempts = 3

func (s *Server) deliver(h *hook, msg map[string]any) {
	txid, _ := msg["data"].(map[string]any)["txid"].(string)
	for attempt := 1; attempt <= hookAttempts; attempt++ {
		msg["delivery_attempt"] = attempt
		b, _ := json.Marshal(msg)
		status := s.post(h.url, b)
		s.mu.Lock()
		s.deliveries = append(s.deliveries, Delivery{NotificationID: h.id, Attempt: attempt, TxID: txid, Status: status})
		s.mu.Unlock()
		if status >= 200 && status <= 299 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) post(url string, body []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Block.io Notifications")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Deliveries returns the web hook POSTs made so far.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}
