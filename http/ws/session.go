package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/eventstore"
)

// session is one connection. Its goroutines: the one running run (reads
// client messages), watch (timeouts and shutdown), write (the only writer of
// data frames) and at most one subscription at a time.
type session struct {
	h    *Handler
	req  *http.Request // the upgrade request
	conn *websocket.Conn
	out  *outbox
	log  *slog.Logger

	feed // its user is set once authenticated, before the writer starts

	admittedAs string        // the user admit counted the session in as; under h.mu
	recheck    chan struct{} // Handler.Recheck: ask StillValid now

	closeOnce sync.Once
	closing   atomic.Bool

	sub *subscription // the reader's
}

// feed decides which events of the log one caller sees and encodes them:
// the one filter of the websocket's subscriptions and of Handler.Follow.
type feed struct {
	cfg    *Config
	user   Principal
	owners map[string]string // alert id → owner; the subscription goroutine's
}

// subscription is a running store subscription.
type subscription struct {
	cancel context.CancelFunc
	g      errgroup.Group
}

// run serves the connection until it ends. p is the header's principal,
// nil when the token is to come as the first message.
func (s *session) run(ctx context.Context, p *Principal, expiry time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	defer func() {
		cancel()
		s.conn.CloseNow() // a writer blocked on a stuck client returns
		s.unsubscribe()
		_ = g.Wait()
	}()
	authed := make(chan time.Time, 1)
	waitAuth := p == nil
	g.Go(func() error {
		s.watch(ctx, waitAuth, authed)
		return nil
	})
	if p == nil {
		var ok bool
		if p, expiry, ok = s.authenticate(ctx); !ok {
			return
		}
		if !s.h.admit(s, p.Username) {
			s.log.Warn("websocket refused: too many connections", "username", p.Username)
			s.close(StatusTooManyConnections, "too many connections")
			return
		}
	}
	s.user = *p
	authed <- expiry
	// Queued before the writer starts, so that it is the first message
	// (not a heartbeat of a writer that ticked first).
	s.out.put(item{msg: encode(authenticatedMessage{Type: msgAuthenticated, Username: p.Username, ExpiresAt: expiry})})
	g.Go(func() error { return s.write(ctx) })
	s.read(ctx)
}

// close closes the connection with code and reason, once; later calls wait
// for the first to finish. Nothing is written after it begins.
func (s *session) close(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.out.close()
		_ = s.conn.Close(code, reason)
	})
}

// watch closes the connection when the handler shuts down, the first
// message's token does not come in time (waitAuth), the token expires (its
// expiry comes on authed) or the credential no longer works (asked every
// RecheckEvery and on Handler.Recheck). It returns when ctx is done or it
// closed.
func (s *session) watch(ctx context.Context, waitAuth bool, authed <-chan time.Time) {
	var deadline, expired, recheckTick <-chan time.Time
	var recheck <-chan struct{}
	if waitAuth {
		t := time.NewTimer(s.h.cfg.AuthTimeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.h.done:
			s.close(websocket.StatusGoingAway, "server shutting down")
			return
		case <-deadline:
			s.close(StatusUnauthorized, "unauthorized")
			return
		case expiry := <-authed:
			deadline, authed = nil, nil
			if !expiry.IsZero() {
				t := time.NewTimer(time.Until(expiry))
				defer t.Stop()
				expired = t.C
			}
			if s.user.StillValid != nil {
				t := time.NewTicker(s.h.cfg.RecheckEvery)
				defer t.Stop()
				recheckTick, recheck = t.C, s.recheck
			}
		case <-expired:
			s.close(StatusUnauthorized, "token expired")
			return
		case <-recheckTick:
			if !s.stillValid(ctx) {
				return
			}
		case <-recheck:
			if !s.stillValid(ctx) {
				return
			}
		}
	}
}

// stillValid asks Principal.StillValid and closes the connection with
// 4401 when the credential no longer works. A check that fails keeps the
// connection open until the next one.
func (s *session) stillValid(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := s.user.StillValid(cctx)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.log.Error("websocket credential check failed", "username", s.user.Username, "err", err)
		}
		return true
	case !ok:
		s.log.Info("websocket closed: credential revoked", "username", s.user.Username)
		s.close(StatusUnauthorized, "credentials revoked")
		return false
	}
	return true
}

// authenticate reads the first message, which must be an auth message with
// a good token. Otherwise it closes the connection with 4401.
func (s *session) authenticate(ctx context.Context) (*Principal, time.Time, bool) {
	typ, b, err := s.conn.Read(context.WithoutCancel(ctx))
	if err != nil {
		return nil, time.Time{}, false // closed: by the client, the deadline or shutdown
	}
	token, ok := firstToken(b)
	if typ != websocket.MessageText || !ok {
		s.close(StatusUnauthorized, "unauthorized")
		return nil, time.Time{}, false
	}
	p, expiry, err := s.h.authenticateToken(s.req, token)
	if err != nil {
		s.log.Debug("websocket authentication failed", "err", err)
		s.close(StatusUnauthorized, "unauthorized")
		return nil, time.Time{}, false
	}
	return p, expiry, true
}

// read handles client messages until the connection ends.
func (s *session) read(ctx context.Context) {
	bad := 0
	for {
		typ, b, err := s.conn.Read(context.WithoutCancel(ctx))
		if err != nil {
			return
		}
		var m inbound
		var reply *errorMessage
		jerr := json.Unmarshal(b, &m)
		m.normalize()
		switch {
		case typ != websocket.MessageText:
			reply = badMessage("binary messages are not part of the protocol")
		case jerr != nil:
			reply = badMessage("not a JSON message of the protocol")
		case m.Type == msgPing:
			s.out.put(item{msg: encode(typeMessage{Type: msgPong})})
		case m.Type == msgSubscribe:
			reply = s.subscribe(ctx, m)
		default:
			reply = badMessage(fmt.Sprintf("unknown message type %q", clip(m.Type)))
		}
		if reply == nil || reply.Code != codeBadMessage {
			bad = 0
		} else if bad++; bad == maxBadMessages {
			s.close(websocket.StatusPolicyViolation, "too many bad messages")
			return
		}
		if reply != nil {
			s.out.put(item{msg: encode(reply)})
		}
	}
}

func badMessage(text string) *errorMessage {
	return &errorMessage{Type: msgError, Code: codeBadMessage, Message: text}
}

// clip shortens a client's string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// subscribe replaces the subscription with the one m asks for, or returns
// the error to answer.
func (s *session) subscribe(ctx context.Context, m inbound) *errorMessage {
	topics, bad := checkTopics(m.Topics)
	if bad != nil {
		return bad
	}
	s.unsubscribe()
	var after uint64
	if m.From != nil {
		after = *m.From
	} else {
		head, err := s.h.cfg.Store.Head(ctx)
		if err != nil {
			s.log.Error("websocket subscribe failed", "username", s.user.Username, "err", err)
			s.close(websocket.StatusInternalError, "internal error")
			return nil
		}
		after = head
	}
	s.out.restart()
	s.out.put(item{kind: kindStart, pos: after, msg: encode(subscribedMessage{Type: msgSubscribed, Topics: topics, From: after})})

	ctx, cancel := context.WithCancel(ctx)
	s.sub = &subscription{cancel: cancel}
	s.sub.g.Go(func() error {
		err := s.h.cfg.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
			return s.deliver(ctx, topics, events)
		})
		switch {
		case ctx.Err() != nil: // replaced, or the connection ended
		case errors.Is(err, errTooSlow):
			s.close(StatusTooSlow, errTooSlow.Error())
		case errors.Is(err, eventstore.ErrClosed):
			s.close(websocket.StatusGoingAway, "server shutting down")
		default:
			s.log.Error("websocket subscription failed", "username", s.user.Username, "position", after, "err", err)
			s.close(websocket.StatusInternalError, "internal error")
		}
		return nil
	})
	return nil
}

// checkTopics returns topics without repeats, or the error to answer when
// there is none or one is unknown.
func checkTopics(in []string) ([]string, *errorMessage) {
	if len(in) == 0 {
		return nil, badMessage("topics: at least one topic is required")
	}
	var topics []string
	for _, t := range in {
		if !knownTopic(t) {
			return nil, &errorMessage{Type: msgError, Code: codeUnknownTopic,
				Message: fmt.Sprintf("unknown topic %q; topics are deposits, withdrawals, transfers, alerts, prices", clip(t))}
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics, nil
}

// unsubscribe stops the subscription, if any, and waits for it.
func (s *session) unsubscribe() {
	if s.sub != nil {
		s.sub.cancel()
		_ = s.sub.g.Wait()
		s.sub = nil
	}
}

// deliver queues the events of a batch that match topics and the caller
// may see.
func (s *session) deliver(ctx context.Context, topics []string, events []eventstore.Event) error {
	items, err := s.messages(ctx, topics, events)
	if err != nil {
		return err
	}
	return s.out.putEvents(items, events[len(events)-1].Position)
}

// messages returns the event messages of the events that match topics and
// the caller may see.
func (f *feed) messages(ctx context.Context, topics []string, events []eventstore.Event) ([]item, error) {
	var items []item
	for _, e := range events {
		r := routeOf(e.Stream, e.Type)
		if r.topic == "" || !slices.Contains(topics, r.topic) {
			continue
		}
		ok, err := f.visible(ctx, r, e)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		msg, err := json.Marshal(eventMessage{Type: msgEvent, Topic: r.topic, Position: e.Position, Stream: e.Stream,
			Revision: e.Revision, EventType: e.Type, Time: e.Created, Data: e.Data})
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e, err)
		}
		items = append(items, item{kind: kindEvent, msg: msg, pos: e.Position})
	}
	return items, nil
}

// visible reports whether the caller may see event e of route r.
func (f *feed) visible(ctx context.Context, r route, e eventstore.Event) (bool, error) {
	switch r.audience {
	case everyone:
		return true, nil
	case walletReaders:
		return f.user.CanRead != nil && f.user.CanRead(r.key), nil
	case alertOwner:
		owner, err := f.alertOwner(ctx, r.key, e.Data)
		return owner != "" && owner == f.user.Username, err
	}
	return false, nil
}

// alertOwner returns the owner of alert id: the one data names, else the
// one remembered, else Config.AlertOwner's.
func (f *feed) alertOwner(ctx context.Context, id string, data json.RawMessage) (string, error) {
	owner := ownerOf(data)
	if owner == "" {
		owner = f.owners[id]
	}
	if owner == "" {
		var err error
		if owner, err = f.cfg.AlertOwner(ctx, id); err != nil {
			return "", fmt.Errorf("owner of alert %s: %w", id, err)
		}
	}
	if owner != "" && f.owners[id] != owner {
		if len(f.owners) >= maxOwnerCache {
			clear(f.owners)
		}
		f.owners[id] = owner
	}
	return owner, nil
}

// write writes the outbox's messages and the heartbeats until ctx is done
// or a write fails.
func (s *session) write(ctx context.Context) error {
	var progress uint64 // everything up to here has been written
	flush := func() error {
		for {
			it, ok := s.out.next()
			if !ok {
				return nil
			}
			if it.msg != nil {
				if err := s.send(it.msg); err != nil {
					return err
				}
			}
			if it.kind != kindMessage {
				progress = it.pos
			}
		}
	}
	// What was queued before the writer started (the authenticated
	// message) goes out before any heartbeat.
	if err := flush(); err != nil {
		return err
	}
	tick := time.NewTicker(s.h.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := s.send(encode(heartbeatMessage{Type: msgHeartbeat, Position: progress})); err != nil {
				return err
			}
		case <-s.out.ready:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// send writes one message. A failure ends the connection.
func (s *session) send(msg []byte) error {
	if s.closing.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		if !s.closing.Load() {
			s.conn.CloseNow()
		}
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
