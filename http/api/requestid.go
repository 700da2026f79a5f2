package api

import (
	"log/slog"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// maxRequestID is the longest client X-Request-ID kept.
const maxRequestID = 128

// requestID gives every request a correlation id: sent back in
// X-Request-ID and stored as the correlation id of every event the request
// causes. A client's own X-Request-ID is kept when it is 1 to 128
// characters of visible ASCII (0x21–0x7E); anything else (too long, spaces,
// control characters, non-ASCII) is replaced by a generated id, so that no
// client can bloat or poison the events of a batch it shares with others.
// Every line logged with the request's context carries the id.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rid := c.Request().Header.Get(echo.HeaderXRequestID)
		if !visibleASCII(rid, maxRequestID) {
			rid = uuid.NewString()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, rid)
		withLogAttrs(c, slog.String("request_id", rid))
		return next(c)
	}
}

// visibleASCII reports whether s has 1 to max bytes, all visible ASCII
// (0x21–0x7E: no spaces, no control characters).
func visibleASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
