package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// Subscriber follows the log for a websocket's caller: the /api/v1/ws
// hub's topics, audiences and positions (see http/ws).
type Subscriber interface {
	// Follow sends the events of topics with a position after from (nil:
	// after the log's head) that caller may see, in increasing position,
	// until ctx is done or send fails. It calls started with the position
	// it follows after before sending anything. A bad request (unknown
	// topic, no topic, no credential) is an *Error, returned before
	// started is called.
	Follow(ctx context.Context, r *http.Request, caller Caller, topics []string, from *uint64,
		started func(after uint64), send func(event json.RawMessage) error) error
}

// ErrRevoked is what a Subscriber returns when the caller's credential
// stopped working: the connection is closed with 4401, as /api/v1/ws does.
var ErrRevoked = errors.New("credentials revoked")

// StatusUnauthorized is the close code of a connection whose credential
// stopped working.
const StatusUnauthorized websocket.StatusCode = 4401

// Notification is a message the server sends unasked: an event of a
// subscription, {"jsonrpc":"2.0","method":"event","params":{"subscription":
// "1","event":{...}}}, where event is the /api/v1/ws event message.
type Notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

type eventParams struct {
	Subscription string          `json:"subscription"`
	Event        json.RawMessage `json:"event"`
}

// subscriptions are a connection's running subscriptions.
type subscriptions struct {
	mu     sync.Mutex
	next   int
	cancel []context.CancelFunc
	wg     sync.WaitGroup
}

func (s *subscriptions) stop() {
	s.mu.Lock()
	for _, c := range s.cancel {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

type subscribeParams struct {
	Topics []string `json:"topics"`
	From   *uint64  `json:"from"`
}

// startSubscription answers subscribe {"topics":[...],"from":N} (or
// [[topics], from]): {"subscription":"1","from":N}, the from in effect;
// events follow as notifications. A connection may hold several.
func (s *Server) startSubscription(ctx context.Context, ss *session, c *conn, subs *subscriptions, params json.RawMessage) (json.RawMessage, error) {
	if s.sub == nil {
		return nil, Errorf(CodeMethodNotFound, "subscriptions are not served here")
	}
	var p subscribeParams
	var pos []json.RawMessage
	switch {
	case json.Unmarshal(params, &pos) == nil && len(pos) >= 1 && len(pos) <= 2:
		if json.Unmarshal(pos[0], &p.Topics) != nil || (len(pos) == 2 && json.Unmarshal(pos[1], &p.From) != nil) {
			return nil, Errorf(CodeInvalidParams, "subscribe takes [[TOPICS], FROM] or {\"topics\":[...],\"from\":N}")
		}
	default:
		dec := json.NewDecoder(bytes.NewReader(params))
		dec.DisallowUnknownFields()
		if dec.Decode(&p) != nil {
			return nil, Errorf(CodeInvalidParams, "subscribe takes [[TOPICS], FROM] or {\"topics\":[...],\"from\":N}")
		}
	}
	subs.mu.Lock()
	subs.next++
	id := strconv.Itoa(subs.next)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	subs.cancel = append(subs.cancel, cancel)
	subs.mu.Unlock()

	started := make(chan uint64, 1)
	failed := make(chan error, 1)
	// Events wait until the reply naming the subscription is written.
	replied := make(chan struct{})
	ss.afterWrite = append(ss.afterWrite, func() { close(replied) })
	r, caller := ss.r, ss.caller // a later login changes ss.caller, not this subscription's
	subs.wg.Add(1)
	go func() {
		defer subs.wg.Done()
		began := false
		err := s.sub.Follow(sctx, r, caller, p.Topics, p.From, func(after uint64) { began = true; started <- after },
			func(ev json.RawMessage) error {
				select {
				case <-replied:
				case <-sctx.Done():
					return sctx.Err()
				}
				return c.write(sctx, Notification{JSONRPC: "2.0", Method: "event", Params: eventParams{id, ev}})
			})
		switch {
		case sctx.Err() != nil:
		case !began:
			failed <- err
		case errors.Is(err, ErrRevoked):
			c.c.Close(StatusUnauthorized, "credentials revoked")
		default:
			// The events stop: the client reconnects and resumes with from.
			c.c.Close(websocket.StatusInternalError, "subscription failed")
		}
	}()
	select {
	case after := <-started:
		return json.Marshal(map[string]any{"subscription": id, "from": after})
	case err := <-failed:
		cancel()
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, err
	}
}
