package api

import (
	"io"
	"net/http"
	"time"

	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/labstack/echo/v4"
)

// exportWriteTimeout bounds one write of an export: a client that stops
// reading is dropped.
const exportWriteTimeout = 30 * time.Second

// exportEvents streams the global log from position from to position to
// (both inclusive; 0 or absent: from the start, to the head) as the NDJSON
// export `coinledger events export` writes (eventstore/dump): data as
// stored, sealed credentials sealed, a header and an end line. Admin only:
// unlike /events, it shows what the store holds byte for byte. An export
// that fails midway ends without its end line, which importers refuse.
func (h *handlers) exportEvents(c echo.Context) error {
	from, err := uintParam(c, "from", 0)
	if err != nil {
		return err
	}
	to, err := uintParam(c, "to", 0)
	if err != nil {
		return err
	}
	w := c.Response()
	// The export lasts as long as the log takes to read: as for the event
	// stream, no read deadline (its expiry would cancel the request's
	// context) and a deadline per write rather than one for the response.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.Header().Set(echo.HeaderCacheControl, "no-store")
	w.WriteHeader(http.StatusOK)
	end, err := dump.Export(c.Request().Context(), h.d.Store, deadlineWriter{w, rc},
		dump.ExportOptions{From: from, To: to, Source: h.d.StoreKind})
	if err != nil {
		// The status is sent: the missing end line tells the client.
		h.d.Logger.WarnContext(c.Request().Context(), "export failed", "position", end.LastPosition, "err", err)
	}
	return nil
}

// deadlineWriter sets a write deadline before each write.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	return d.w.Write(p)
}
