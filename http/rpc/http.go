package rpc

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// ServeHTTP answers a POST of one message for caller: 200 with the
// response or the batch's responses (JSON-RPC errors included), 204 when
// there is nothing to answer (notifications only). The media type is not
// checked (curl --data sends a form type); the body must be JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, caller Caller) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMessage+1))
	var out any
	switch {
	case err != nil:
		out = failure(nil, Errorf(CodeParseError, "parse error: reading the body: %v", err))
	case len(body) > maxMessage:
		out = failure(nil, Errorf(CodeInvalidRequest, "invalid request: the message exceeds %d bytes", maxMessage))
	default:
		var ok bool
		if out, ok = s.handle(r.Context(), newSession(r, caller, false), body); !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(out)
}

// writeTimeout bounds one websocket write.
const writeTimeout = 30 * time.Second

// conn is a websocket whose writes are serialized (replies and
// subscription notifications).
type conn struct {
	c  *websocket.Conn
	mu sync.Mutex
}

func (c *conn) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Write(ctx, websocket.MessageText, b)
}

// ServeWebsocket upgrades r and answers its messages, one at a time in
// the order they come, until the connection ends or done is closed (then
// with 1001). Each text message is a request or a batch, answered as over
// HTTP (nothing for notifications only).
func (s *Server) ServeWebsocket(w http.ResponseWriter, r *http.Request, caller Caller, done <-chan struct{}) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer ws.CloseNow()
	ws.SetReadLimit(maxMessage)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-done:
			ws.Close(websocket.StatusGoingAway, "server shutting down")
		case <-ctx.Done():
		}
	}()
	c := &conn{c: ws}
	ss := newSession(r, caller, true)
	subs := &subscriptions{}
	defer subs.stop()
	ss.subscribe = func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		return s.startSubscription(ctx, ss, c, subs, params)
	}
	for {
		typ, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var out any
		answer := true
		if typ != websocket.MessageText {
			out = failure(nil, Errorf(CodeParseError, "parse error: binary messages are not JSON-RPC"))
		} else {
			out, answer = s.handle(ctx, ss, msg)
		}
		if answer {
			if err := c.write(ctx, out); err != nil {
				return
			}
		}
		ss.written()
	}
}
