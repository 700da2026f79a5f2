package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/labstack/echo/v4"
)

// Event is a stored event as auditors read it: with its id, time,
// metadata and chain hash, so they can recompute every hash themselves
// (eventstore.ChainHash). Credential material is sealed in the stored data
// and shows as a box; events stored before sealing hold it in the clear and
// are shown with it redacted (Redacted): their own hash cannot be
// recomputed, only linked (eventstore.Verifier.Link). Clients of the API
// (coinledger audit verify) read it with Stored.
type Event struct {
	ID       string          `json:"id"`
	Position uint64          `json:"position"`
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Hash     string          `json:"hash"`
	Redacted bool            `json:"redacted,omitempty"`
}

// credentials are the event fields that never leave the service in the clear.
var credentials = eventstore.Sealing(identity.CredentialFields())

type eventPage struct {
	Events []Event `json:"events"`
	Next   uint64  `json:"next"`
}

type streamPage struct {
	Stream string  `json:"stream"`
	Events []Event `json:"events"`
	Next   uint64  `json:"next"`
}

// eventOf is e as readers of the log see it: with any credential that it
// holds in the clear redacted.
func eventOf(e eventstore.Event) Event {
	meta, _ := json.Marshal(e.Metadata) // a plain struct
	data, redacted := credentials.Redact(e)
	return Event{ID: e.ID.String(), Position: e.Position, Stream: e.Stream, Revision: e.Revision, Type: e.Type,
		Time: e.Created, Data: data, Metadata: meta, Hash: e.Hash.String(), Redacted: redacted}
}

// Stored is the event a reader of the API was shown (with Data as shown:
// redacted when Redacted).
func (a Event) Stored() (eventstore.Event, error) {
	e := eventstore.Event{Stream: a.Stream, Revision: a.Revision, Position: a.Position, Type: a.Type,
		Data: a.Data, Created: a.Time.UTC()}
	if err := e.ID.UnmarshalText([]byte(a.ID)); err != nil {
		return e, fmt.Errorf("event at position %d: id: %w", a.Position, err)
	}
	if err := e.Hash.UnmarshalText([]byte(a.Hash)); err != nil {
		return e, fmt.Errorf("event at position %d: hash: %w", a.Position, err)
	}
	if len(a.Metadata) > 0 {
		if err := json.Unmarshal(a.Metadata, &e.Metadata); err != nil {
			return e, fmt.Errorf("event at position %d: metadata: %w", a.Position, err)
		}
	}
	return e, nil
}

// eventFilter selects events by stream prefix and type.
type eventFilter struct{ prefix, typ string }

func (f eventFilter) match(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, f.prefix) && (f.typ == "" || e.Type == f.typ)
}

func filterOf(c echo.Context) eventFilter {
	return eventFilter{prefix: c.QueryParam("stream_prefix"), typ: c.QueryParam("type")}
}

// uintParam reads a non-negative integer query parameter (def when absent).
func uintParam(c echo.Context, name string, def uint64) (uint64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, invalidFields(fieldError{Field: name, Message: "must be a non-negative integer"})
	}
	return n, nil
}

// maxScan bounds the events one filtered page reads: a page may hold
// fewer than limit events; next continues the scan.
const maxScan = 10_000

// listEvents pages through the global log from position from (1 when
// absent), oldest first.
func (h *handlers) listEvents(c echo.Context) error {
	from, err := uintParam(c, "from", 1)
	if err != nil {
		return err
	}
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	f := filterOf(c)
	after := max(from, 1) - 1
	page := eventPage{Events: []Event{}, Next: max(from, 1)}
	ctx := c.Request().Context()
	for scanned := 0; len(page.Events) < limit && scanned < maxScan; {
		batch, err := h.d.Store.ReadAll(ctx, after, min(1000, maxScan-scanned))
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			after, page.Next = e.Position, e.Position+1
			scanned++
			if f.match(e) {
				page.Events = append(page.Events, eventOf(e))
				if len(page.Events) == limit {
					break
				}
			}
		}
	}
	return c.JSON(http.StatusOK, page)
}

// getStream reads one stream from revision from (0 when absent).
func (h *handlers) getStream(c echo.Context) error {
	name, err := url.PathUnescape(c.Param("stream"))
	if err != nil || name == "" {
		return errNotFound
	}
	from, err := uintParam(c, "from", 0)
	if err != nil {
		return err
	}
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	events, err := h.d.Store.ReadStream(c.Request().Context(), name, from, limit)
	if err != nil {
		return err
	}
	if len(events) == 0 && from == 0 {
		return errNotFound
	}
	page := streamPage{Stream: name, Events: make([]Event, len(events)), Next: from}
	for i, e := range events {
		page.Events[i], page.Next = eventOf(e), e.Revision+1
	}
	return c.JSON(http.StatusOK, page)
}

// sseHeartbeat is how often an idle event stream sends a comment, so
// proxies keep it open.
const sseHeartbeat = 15 * time.Second

// sseWriteTimeout bounds one write of an event stream: a client that stops
// reading is dropped.
const sseWriteTimeout = 30 * time.Second

// streamEvents follows the log as server-sent events: id = position, event
// = type, data = the event as JSON; it resumes after Last-Event-ID (or
// from), first with the stored events, then live.
func (h *handlers) streamEvents(c echo.Context) error {
	from, err := uintParam(c, "from", 1)
	if err != nil {
		return err
	}
	after := max(from, 1) - 1
	if v := c.Request().Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return invalidFields(fieldError{Field: "Last-Event-ID", Message: "must be an event position"})
		}
		after = n
	}
	f := filterOf(c)
	w := c.Response()
	// The server's ReadTimeout and WriteTimeout bound whole requests; a
	// stream lasts as long as its client. No read deadline (its expiry
	// would cancel the request's context), and a deadline per write
	// rather than one for the whole response. (A writer without deadlines
	// answers ErrNotSupported: nothing to clear then.)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	var mu sync.Mutex // the heartbeat and the events write in turn
	send := func(write func()) {
		mu.Lock()
		defer mu.Unlock()
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		write()
		w.Flush()
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	beats := time.NewTicker(sseHeartbeat)
	defer beats.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-beats.C:
				send(func() { fmt.Fprint(w, ": heartbeat\n\n") })
			}
		}
	}()
	err = h.d.Store.Subscribe(ctx, after, func(_ context.Context, events []eventstore.Event) error {
		var werr error
		send(func() {
			for _, e := range events {
				if !f.match(e) {
					continue
				}
				b, _ := json.Marshal(eventOf(e)) // plain data
				if _, werr = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Position, e.Type, b); werr != nil {
					return
				}
			}
		})
		return werr
	})
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil // the client went away
	}
	if err != nil {
		h.d.Logger.WarnContext(c.Request().Context(), "event stream ended", "err", err)
	}
	return nil
}
