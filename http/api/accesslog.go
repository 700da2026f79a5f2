package api

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coinledger/coinledger/internal/logging"
)

// accessLog writes one line per request once it is answered: method,
// route pattern, path (never the query, which may carry a token), status,
// bytes written, latency and client address; the request id and the user
// come from the request's context (requestID, authenticate). Probes and
// scrapes (/healthz, /readyz, /metrics) log at debug.
func (h *handlers) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // writes the problem document, so the status is known
		}
		req, res := c.Request(), c.Response()
		level := slog.LevelInfo
		switch c.Path() {
		case "/healthz", "/readyz", "/metrics":
			level = slog.LevelDebug
		}
		if !h.d.Logger.Enabled(req.Context(), level) {
			return nil
		}
		ip, _ := h.d.ClientIP.Of(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
		h.d.Logger.LogAttrs(req.Context(), level, "request",
			slog.String("method", req.Method), slog.String("route", c.Path()), slog.String("path", req.URL.Path),
			slog.Int("status", res.Status), slog.Int64("bytes", res.Size), slog.Duration("latency", time.Since(start)),
			slog.String("client_ip", ip.String()))
		return nil
	}
}

// withLogAttrs makes every line logged with the request's context from now
// on carry attrs.
func withLogAttrs(c echo.Context, attrs ...slog.Attr) {
	r := c.Request()
	c.SetRequest(r.WithContext(logging.With(r.Context(), attrs...)))
}

// security logs a security event of the request (logins, credentials,
// grants, disabling): the event's name and what it concerns, never a
// secret; the request id and the acting user come from the context.
func (h *handlers) security(c echo.Context, level slog.Level, event string, attrs ...slog.Attr) {
	h.d.Logger.LogAttrs(c.Request().Context(), level, "security event", append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}
